# Copyright (c) EVLab contributors.
"""Analytic multiply-accumulates of a (pruned) ViT (spec 2.7, derived).

Block ``l`` takes ``N_{l-1}`` tokens and outputs ``N_l`` (width ``d``, MLP
hidden ``h``)::

    q: N_l d^2    k, v: 2 N_{l-1} d^2    q k^T and a v: 2 N_l N_{l-1} d
    proj: N_l d^2    MLP: 2 N_l d h

(``h = 4 d``: ``(N_l + 2 N_{l-1}) d^2 + 2 N_l N_{l-1} d + 9 N_l d^2``), plus
the patch embedding (``P`` patches of ``p x p x c`` pixels: ``P p^2 c d``)
and the classifier (``d x classes``). Norms, softmax, GELU and additions
are not counted (the convention of the papers' FLOPs columns, which are
MACs).
"""
from typing import Dict, Sequence


def block_macs(n_in: int, n_out: int, dims: int, hidden: int) -> int:
    """MACs of one transformer block that reads ``n_in`` tokens and
    outputs ``n_out``."""
    return ((n_out + 2 * n_in) * dims * dims + 2 * n_out * n_in * dims +
            n_out * dims * dims + 2 * n_out * dims * hidden)


def vit_macs(tokens: Sequence[int], dims: int, hidden: int,
             num_patches: int, patch_size: int, in_channels: int = 3,
             num_classes: int = 0) -> Dict[str, int]:
    """MACs of a ViT whose blocks output ``tokens[l]`` tokens each (the
    input has ``num_patches + 1``, the class token included).

    Returns:
        dict: ``patch_embed``, ``blocks`` (a list), ``head`` and ``total``.
    """
    n = num_patches + 1
    blocks = []
    for n_out in tokens:
        blocks.append(block_macs(n, n_out, dims, hidden))
        n = n_out
    embed = num_patches * patch_size * patch_size * in_channels * dims
    head = dims * num_classes
    return dict(patch_embed=embed, blocks=blocks, head=head,
                total=embed + sum(blocks) + head)


def model_macs(backbone, num_classes: int = 0) -> Dict[str, int]:
    """:func:`vit_macs` of a :class:`~.vit.PatchSlimViT` with its keep
    lists, or with its token merging (``tome_r``; blocks from
    :func:`~.tome.tome_block_macs`). The MLP width is read from its first
    block; a linear patch embedding is assumed."""
    fc = backbone.layers[0].ffn.layers[0][0]
    patch = backbone.patch_embed.projection
    out = vit_macs(backbone.tokens_per_block, backbone.embed_dims,
                   fc.out_features, backbone.num_tokens - 1,
                   patch.kernel_size[0], patch.in_channels, num_classes)
    if backbone.tome_r is not None:
        from .tome import tome_block_macs
        n, blocks = backbone.num_tokens, []
        for r in backbone.tome_r:
            blocks.append(tome_block_macs(n, r, backbone.embed_dims,
                                          fc.out_features,
                                          backbone.layers[0].attn.head_dims))
            n -= min(r, (n - 1) // 2)
        out['blocks'] = blocks
        out['total'] = out['patch_embed'] + sum(blocks) + out['head']
    return out

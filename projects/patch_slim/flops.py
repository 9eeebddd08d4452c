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
from typing import Dict, Optional, Sequence


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


def model_macs(backbone, num_classes: int = 0,
               tokens: Optional[Sequence[int]] = None) -> Dict[str, int]:
    """MACs of a :class:`~.vit.PatchSlimViT`: the blocks analytically,
    with its keep lists (or ``tokens`` per block instead), or with its
    token merging (``tome_r``, :func:`~.tome.tome_block_macs`); the patch
    embedding counted on the model (a linear or a CNN one), the classifier
    as ``dims x num_classes``."""
    import torch

    from ..common.complexity import count_conv_linear_macs
    fc = backbone.layers[0].ffn.layers[0][0]
    embed = count_conv_linear_macs(
        backbone.patch_embed, [torch.zeros(1, 3, *backbone.input_size)])
    tokens = backbone.tokens_per_block if tokens is None else \
        [int(n) for n in tokens]
    out = vit_macs(tokens, backbone.embed_dims, fc.out_features,
                   backbone.num_tokens - 1, 0, 0, num_classes)
    if backbone.tome_r is not None:
        from .tome import tome_block_macs
        n, blocks = backbone.num_tokens, []
        for r in backbone.tome_r:
            blocks.append(tome_block_macs(n, r, backbone.embed_dims,
                                          fc.out_features,
                                          backbone.layers[0].attn.head_dims))
            n -= min(r, (n - 1) // 2)
        out['blocks'] = blocks
    out['patch_embed'] = embed
    out['total'] = embed + sum(out['blocks']) + out['head']
    return out

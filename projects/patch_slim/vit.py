# Copyright (c) EVLab contributors.
"""Patch Slimming (Tang et al., CVPR 2022, arXiv 2106.02852): a vision
transformer whose blocks compute only a static, top-down nested list of
patch tokens. No official code exists; this is a re-implementation from
the paper's description (spec ``patch_slim.md`` sections 2.1, 2.2, 2.7).

:class:`PatchSlimViT` is mmpretrain's ``VisionTransformer`` with the same
parameters (its checkpoints and the timm DeiT converter's load unchanged)
and one persistent buffer, ``keep_mask``: ``(L, N)`` booleans, row ``l``
the tokens block ``l`` outputs. The rows are nested (a token dropped at
block ``l`` is absent from every later block) and token 0, the class
token, is always kept. Two equivalent forward paths:

- ``'gather'`` (inference): block ``l`` takes the ``N_{l-1}`` tokens
  present, computes queries, the residual and the MLP for its ``N_l`` kept
  tokens only, keys and values from all ``N_{l-1}`` (spec 2.7); the dropped
  tokens are physically absent, so it is really faster;
- ``'masked'`` (search and fine-tuning): all ``N`` rows stay, the keys of
  dropped tokens are masked with ``-inf`` and dropped rows stop changing.
  On the kept rows it gives what ``'gather'`` gives (tested).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from torch import Tensor

from ..common.cnn_embed import CNNPatchEmbed
from ..common.errors import EVLabError
from .tome import bipartite_merge

KeepLike = Union[None, str, Sequence[Sequence[int]], Tensor]


def keep_lists_to_mask(keep: Sequence[Sequence[int]], num_layers: int,
                       num_tokens: int) -> Tensor:
    """``(L, N)`` boolean mask from per-block kept token positions (block
    ``l``'s output tokens, absolute positions, 0 = the class token),
    checked: one list per block, positions in range, the class token in
    every list, nested top-down."""
    if len(keep) != num_layers:
        raise EVLabError(f'keep_indices has {len(keep)} lists, the model '
                         f'has {num_layers} blocks (one list per block)')
    mask = torch.zeros(num_layers, num_tokens, dtype=torch.bool)
    for layer, idx in enumerate(keep):
        idx = [int(i) for i in idx]
        bad = [i for i in idx if not 0 <= i < num_tokens]
        if bad:
            raise EVLabError(f'keep_indices[{layer}] has positions {bad[:5]} '
                             f'outside the {num_tokens} tokens (0 .. '
                             f'{num_tokens - 1})')
        mask[layer, idx] = True
    check_keep_mask(mask, num_layers, num_tokens)
    return mask


def check_keep_mask(mask: Tensor, num_layers: int, num_tokens: int,
                    source: str = 'keep_indices') -> None:
    """Raise :class:`EVLabError` unless ``mask`` is a nested ``(L, N)``
    mask that keeps the class token in every block."""
    if tuple(mask.shape) != (num_layers, num_tokens):
        raise EVLabError(
            f'{source} is for {mask.shape[0]} blocks x {mask.shape[1]} '
            f'tokens; this model has {num_layers} blocks x {num_tokens} '
            f'tokens (another depth or input size)')
    mask = mask.bool()
    no_cls = [i for i in range(num_layers) if not mask[i, 0]]
    if no_cls:
        raise EVLabError(f'{source} drops the class token (position 0) in '
                         f'blocks {no_cls}; it is kept in every block')
    # nested: a token kept by block l+1 is kept by block l
    grows = (mask[1:] & ~mask[:-1]).any(dim=1).nonzero().flatten()
    if len(grows):
        layer = int(grows[0]) + 1
        extra = (mask[layer] & ~mask[layer - 1]).nonzero().flatten()
        raise EVLabError(
            f'{source} is not nested top-down: block {layer} keeps tokens '
            f'{extra[:5].tolist()} that block {layer - 1} dropped (a token '
            f'dropped once is gone from every later block)')


@MODELS.register_module()
class PatchSlimViT(VisionTransformer):
    """A ViT/DeiT with static top-down patch pruning (Patch Slimming).

    All arguments of mmpretrain's ``VisionTransformer`` apply (``arch``,
    ``img_size``, ``patch_size``, ``out_indices``, ...). Pruning needs the
    class token: ``out_type='cls_token'`` (the default) unless every block
    keeps every token.

    Args:
        keep_indices (str | list[list[int]] | Tensor, optional): The tokens
            each block outputs: one list of absolute positions per block
            (0 is the class token), a ``keep_indices.json`` written by the
            search (``{"keep_indices": [...]}``), or an ``(L, N)`` boolean
            mask. Defaults to None: every block keeps every token (the
            dense ViT). A pruned checkpoint carries its own mask in the
            ``keep_mask`` buffer and overrides this on loading (a dense
            one, keeping every token, does not).
        forward_mode (str): ``'gather'`` or ``'masked'`` (see the module
            docstring). Defaults to ``'gather'``.
        tome_r (int | list[int], optional): Token merging instead of
            pruning (:mod:`.tome`, the training-free comparison): merge
            this many tokens after the attention of each block (one value
            for all, or one per block). Defaults to None.
        cnn (dict, optional): A CNN as the patch embedding (the hybrid ViT,
            :class:`~projects.common.cnn_embed.CNNPatchEmbed`), whose total
            stride must be ``patch_size``. Defaults to None (the linear
            patch embedding).
        **kwargs: ``VisionTransformer``'s arguments.
    """

    def __init__(self, *args, keep_indices: KeepLike = None,
                 forward_mode: str = 'gather', cnn: Optional[dict] = None,
                 tome_r: Union[None, int, Sequence[int]] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: (H, W) of the training input
        self.input_size = tuple(self.patch_embed.init_input_size)
        if cnn is not None:
            self.patch_embed = CNNPatchEmbed(
                cnn, embed_dims=self.embed_dims,
                in_channels=kwargs.get('in_channels', 3),
                img_size=self.input_size,
                patch_size=kwargs.get('patch_size', 16))
        if self.cls_token is None:
            raise EVLabError('PatchSlimViT needs the class token '
                             '(with_cls_token=True)')
        if forward_mode not in ('gather', 'masked'):
            raise ValueError(f"forward_mode must be 'gather' or 'masked', "
                             f'got {forward_mode!r}')
        self.forward_mode = forward_mode
        self.tome_r: Optional[List[int]] = None
        if tome_r is not None:
            self.set_tome(tome_r)
        self.num_tokens = (self.patch_resolution[0] *
                           self.patch_resolution[1] + self.num_extra_tokens)
        self.register_buffer(
            'keep_mask', torch.ones(self.num_layers, self.num_tokens,
                                    dtype=torch.bool), persistent=True)
        if keep_indices is not None:
            self.set_keep(keep_indices)
        else:
            self._refresh()

    # ---- the keep lists ---------------------------------------------------

    def set_keep(self, keep: KeepLike) -> None:
        """Set the tokens each block keeps (see ``keep_indices``)."""
        if isinstance(keep, str):
            from .io import load_keep_indices
            keep = load_keep_indices(keep)
        if isinstance(keep, Tensor) and keep.dtype == torch.bool:
            mask = keep.clone()
            check_keep_mask(mask, self.num_layers, self.num_tokens)
        else:
            mask = keep_lists_to_mask(keep, self.num_layers,
                                      self.num_tokens)
        self.keep_mask.copy_(mask.to(self.keep_mask.device))
        self._refresh()

    def set_tome(self, r: Union[None, int, Sequence[int]]) -> None:
        """Merge ``r`` tokens per block (ToMe), or None to stop merging."""
        if r is None:
            self.tome_r = None
            return
        rs = [int(r)] * self.num_layers if isinstance(r, int) else \
            [int(v) for v in r]
        if len(rs) != self.num_layers or min(rs) < 0:
            raise EVLabError(f'tome_r must be one count >= 0 or one per '
                             f'block ({self.num_layers}), got {r!r}')
        self.tome_r = rs

    def tome_tokens(self) -> List[int]:
        """Tokens each block outputs when merging (ToMe)."""
        n, out = self.num_tokens, []
        for r in self.tome_r or [0] * self.num_layers:
            n -= min(r, (n - 1) // 2)
            out.append(n)
        return out

    def keep_lists(self) -> List[List[int]]:
        """The kept absolute positions of each block."""
        return [row.nonzero().flatten().tolist() for row in self.keep_mask]

    @property
    def tokens_per_block(self) -> List[int]:
        """``N_l``: the tokens block ``l`` outputs."""
        return [int(n) for n in self.keep_mask.sum(dim=1)]

    @property
    def is_pruned(self) -> bool:
        return not bool(self.keep_mask.all())

    def _refresh(self) -> None:
        """Rebuild the gather indices from ``keep_mask``: for block ``l``
        the positions of its kept tokens inside block ``l-1``'s (None when
        it keeps them all, so no gather runs)."""
        if self.is_pruned and self.out_type != 'cls_token':
            raise EVLabError(f"a pruned PatchSlimViT outputs the class "
                             f"token only: out_type must be 'cls_token', "
                             f'got {self.out_type!r}')
        rel: List[Optional[Tensor]] = []
        prev = torch.ones(self.num_tokens, dtype=torch.bool,
                          device=self.keep_mask.device)
        for row in self.keep_mask:
            if torch.equal(row, prev):
                rel.append(None)
            else:
                # positions of row's kept tokens among prev's kept ones
                rel.append(row[prev].nonzero().flatten())
            prev = row
        self._rel = rel

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + 'keep_mask'
        if key in state_dict:
            mask = state_dict[key]
            check_keep_mask(mask, self.num_layers, self.num_tokens,
                            source=f'the checkpoint\'s {key}')
            # a pruned checkpoint's lists win over the config's; one that
            # keeps every token is a dense model (e.g. the start of a
            # baseline given lists in its config): the config's stay
            if not bool(mask.all()):
                self.keep_mask.copy_(mask.bool().to(self.keep_mask.device))
            state_dict = dict(state_dict)
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
        # a dense checkpoint has no keep_mask: the config's lists stay
        while key in missing_keys:
            missing_keys.remove(key)
        self._refresh()

    def train(self, mode: bool = True) -> 'PatchSlimViT':
        # mmpretrain's VisionTransformer.train returns None; return self as
        # nn.Module does, so that ``model.eval()`` chains
        super().train(mode)
        return self

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        if hasattr(self, '_rel'):
            self._refresh()  # the indices follow the buffer's device
        return out

    # ---- forward ----------------------------------------------------------

    def forward(self, x: Tensor):
        x, patch_resolution = self.embed(x)
        if self.tome_r is not None:
            return self._forward_tome(x, patch_resolution)
        masked = self.forward_mode == 'masked' and self.is_pruned
        outs = []
        prev = None
        for i, layer in enumerate(self.layers):
            if masked:
                x = self._masked_block(layer, x, prev, self.keep_mask[i])
                prev = self.keep_mask[i]
            else:
                x = self._gather_block(layer, x, self._rel[i])
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    def _forward_tome(self, x: Tensor, patch_resolution):
        if self.is_pruned:
            raise EVLabError('PatchSlimViT prunes (keep lists) or merges '
                             '(tome_r), not both')
        if self.out_type != 'cls_token':
            raise EVLabError(f"token merging outputs the class token only: "
                             f"out_type must be 'cls_token', got "
                             f'{self.out_type!r}')
        size = torch.ones(x.shape[0], x.shape[1], 1, dtype=x.dtype,
                          device=x.device)
        outs = []
        for i, layer in enumerate(self.layers):
            h = layer.ln1(x)
            a, keys = self._attention(layer.attn, h, h,
                                      key_bias=size[..., 0].log(),
                                      return_keys=True)
            x = x + a
            x, size = bipartite_merge(x, size, keys, self.tome_r[i])
            x = layer.ffn(layer.ln2(x), identity=x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    @staticmethod
    def _attention(attn, h_q: Tensor, h_kv: Tensor,
                   key_mask: Optional[Tensor] = None,
                   return_maps: bool = False,
                   key_bias: Optional[Tensor] = None,
                   return_keys: bool = False):
        """mmpretrain's ``MultiheadAttention`` with the queries of
        ``h_q`` (B, Nq, C) and the keys/values of ``h_kv`` (B, Nk, C):
        the fused ``qkv`` weight is sliced (rows [0:C] q, [C:2C] k, [2C:3C]
        v), so the checkpoint is used as is. ``key_mask`` (Nk,) bool drops
        the keys that are False. ``return_maps``: compute the softmax
        eagerly and also return it, ``(B, heads, Nq, Nk)``. ``key_bias``
        (B, Nk) is added to the logits of each key (ToMe's proportional
        attention, ``log(size)``); ``return_keys`` also returns the keys
        averaged over heads, ``(B, Nk, head_dims)`` (ToMe's metric)."""
        B, Nq, C = h_q.shape
        Nk = h_kv.shape[1]
        heads, hd = attn.num_heads, attn.head_dims
        w, b = attn.qkv.weight, attn.qkv.bias
        q = F.linear(h_q, w[:C], None if b is None else b[:C])
        kv = F.linear(h_kv, w[C:], None if b is None else b[C:])
        # (B, N, C) -> (B, heads, N, hd)
        q = q.reshape(B, Nq, heads, hd).transpose(1, 2)
        kv = kv.reshape(B, Nk, 2, heads, hd).permute(2, 0, 3, 1, 4)
        mask = None
        if key_mask is not None:
            mask = torch.zeros(1, Nk, dtype=q.dtype, device=q.device)
            mask = mask.masked_fill(~key_mask[None], float('-inf'))
        if key_bias is not None:  # (B, Nk) -> (B, 1, 1, Nk)
            bias = key_bias[:, None, None, :].to(q.dtype)
            mask = bias if mask is None else mask + bias
        drop = attn.attn_drop if attn.training else 0.
        maps = None
        if return_maps:
            logits = q @ kv[0].transpose(-2, -1) * hd ** -0.5
            if mask is not None:
                logits = logits + mask
            maps = logits.softmax(dim=-1)  # (B, heads, Nq, Nk)
            out = F.dropout(maps, drop, attn.training) @ kv[1]
        else:
            out = F.scaled_dot_product_attention(
                q, kv[0], kv[1], attn_mask=mask, dropout_p=drop)
        out = out.transpose(1, 2).reshape(B, Nq, C)
        out = attn.proj(out)
        out = attn.out_drop(attn.gamma1(attn.proj_drop(out)))
        if return_keys:
            return out, kv[0].mean(dim=1)
        return (out, maps) if return_maps else out

    def _gather_block(self, layer, x: Tensor,
                      rel: Optional[Tensor]) -> Tensor:
        if rel is None:
            return layer(x)
        h = layer.ln1(x)
        # queries, residual and MLP for the kept tokens only (spec 2.7)
        x = x[:, rel] + self._attention(layer.attn, h[:, rel], h)
        return layer.ffn(layer.ln2(x), identity=x)

    def _masked_block(self, layer, x: Tensor, present: Optional[Tensor],
                      keep: Tensor, record: Optional[dict] = None
                      ) -> Tensor:
        h = layer.ln1(x)
        if record is None:
            y = x + self._attention(layer.attn, h, h, present)
        else:
            a, maps = self._attention(layer.attn, h, h, present,
                                      return_maps=True)
            record['maps'].append(maps)
            record['inputs'].append(h)
            y = x + a
        y = layer.ffn(layer.ln2(y), identity=y)
        # dropped rows stop changing (their values are never read again)
        return torch.where(keep[None, :, None], y, x)

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Tokens entering block 0 (patches, class token, positions),
        ``(B, N, C)``, and the patch grid."""
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if tuple(patch_resolution) != tuple(self.patch_resolution) and \
                self.is_pruned:
            raise EVLabError(
                f'the keep lists are for a {self.patch_resolution} patch '
                f'grid; the input gives {tuple(patch_resolution)}')
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed, self.patch_resolution, patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        return self.pre_norm(self.drop_after_pos(x)), patch_resolution

    def forward_blocks(self, x: Tensor, start: int = 0,
                       mask: Optional[Tensor] = None,
                       record: Optional[dict] = None) -> Tensor:
        """Run blocks ``start..L-1`` on the full token set ``x`` (B, N, C)
        with the masked-dense path and keep mask ``mask`` (default: the
        model's); the final class feature ``(B, C)`` after the last norm.
        Blocks before ``start`` are taken to keep every token (the search
        scores and prunes block ``start`` with them dense).
        ``record=dict(maps=[], inputs=[])`` collects each block's attention
        maps and attention input (eager attention)."""
        mask = self.keep_mask if mask is None else mask
        present = None
        for i in range(start, len(self.layers)):
            x = self._masked_block(self.layers[i], x, present, mask[i],
                                   record)
            present = mask[i]
        if self.final_norm:
            x = self.ln1(x)
        return x[:, 0]

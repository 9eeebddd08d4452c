# Copyright (c) EVLab contributors.
"""Interlaced Sparse Self-Attention (ISA) for mmseg.

Huang et al., "Interlaced Sparse Self-Attention for Semantic Segmentation",
arXiv 1907.12273 (folded into OCNet, IJCV 2021). Official code:
https://github.com/openseg-group/openseg.pytorch
(``lib/models/modules/isa_block.py``). The reproduction follows mmseg's
``ISAHead`` (same state_dict layout), see ``README.md`` for the readings.

Anatomy: the self-attention block -> the interlaced two-step attention (a
function shared by the module and the head) -> the reusable modules
(``InterlacedSparseSelfAttention``, ``DenseSelfAttention``) -> the decode
head ``ISSAHead`` -> the cost formula ``isa_cost``.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType

from .partition import (
    PartitionMeta,
    long_to_map,
    long_to_short,
    short_to_long,
    short_to_map,
    to_long_groups,
    to_short_groups,
)

ORDERS = (('long', 'short'), ('short', 'long'))


class ISSABlock(nn.Module):
    """One self-attention block of ISA (used twice, separate weights).

    For a group tensor g of shape (B, C, h, w), with N = h * w::

        q = phi_q(g), k = phi_k(g)          (B, C_k, N), 2 x [1x1 conv-BN-ReLU]
        v = W_v g                           (B, C, N), plain 1x1 conv + bias
        A = softmax_keys(q^T k / sqrt(C_k)) (B, N, N)
        out = psi(v A^T)                    psi: 1x1 conv-BN-ReLU

    Module names equal mmseg's ISA ``SelfAttentionBlock``
    (``query_project``, ``key_project``, ``value_project``,
    ``output_project``), so its weights load with ``strict=True``. The
    output projection is not zero-initialised: with BN-ReLU between the two
    attentions a zero init would feed zeros to the second one (openseg
    issue #35). Unlike mmseg, ``v`` and the context stay in the (B, C, N)
    layout (the two transposes are strided views inside ``bmm``), which
    saves three copies of a (B, C, N) tensor per call.

    Args:
        channels (int): Input and output channels C.
        key_channels (int): Query/key channels C_k.
        conv_cfg (dict, optional): Config of the convs. Defaults to None.
        norm_cfg (dict, optional): Config of the norms; None for none, as
            in mmcv's ``ConvModule``. The paper uses ``dict(type='BN')``
            (SyncBN in the segmentation configs). Defaults to None.
        act_cfg (dict, optional): Config of the activations; None for
            none. The paper uses ``dict(type='ReLU')``. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 key_channels: int,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = None,
                 act_cfg: OptConfigType = None) -> None:
        super().__init__()
        self.channels = channels
        self.key_channels = key_channels

        def key_query() -> nn.Sequential:
            return nn.Sequential(
                ConvModule(channels, key_channels, 1, conv_cfg=conv_cfg,
                           norm_cfg=norm_cfg, act_cfg=act_cfg),
                ConvModule(key_channels, key_channels, 1, conv_cfg=conv_cfg,
                           norm_cfg=norm_cfg, act_cfg=act_cfg))

        self.key_project = key_query()
        self.query_project = key_query()
        self.value_project = nn.Conv2d(channels, channels, 1)
        self.output_project = ConvModule(
            channels, channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
            act_cfg=act_cfg)

    def forward(self,
                x: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend within each batch element.

        Args:
            x (Tensor): (B, C, h, w).
            key_mask (Tensor, optional): (B, h * w) bool, False at keys to
                ignore. Defaults to None (every key is used).

        Returns:
            Tensor: (B, C, h, w).
        """
        # the intermediates of context() are freed before the projection
        return self.output_project(self.context(x, key_mask))

    def context(self,
                x: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``v A^T`` before the output projection, (B, C, h, w)."""
        b, _, h, w = x.shape
        # scale q (B*N*C_k values) instead of the affinity (B*N*N values);
        # the usual 1/sqrt(C_k) of scaled dot-product attention
        q = self.query_project(x).flatten(2) * self.key_channels**-0.5
        k = self.key_project(x).flatten(2)  # (B, C_k, N)
        sim = torch.bmm(q.transpose(1, 2), k)  # (B, N_q, N_k)
        del q, k
        if key_mask is not None:
            # finite, so a group whose keys are all padding stays finite
            sim = sim.masked_fill(~key_mask[:, None, :],
                                  torch.finfo(sim.dtype).min)
        # softmax over the keys, at least in fp32 (under AMP), never below
        # the input's precision (a float64 run stays float64)
        attn = sim.softmax(
            dim=-1, dtype=torch.promote_types(sim.dtype, torch.float32))
        del sim
        v = self.value_project(x).flatten(2)  # (B, C, N)
        context = torch.bmm(v, attn.to(v.dtype).transpose(1, 2))
        return context.view(b, -1, h, w)  # (B, C, N_q) -> (B, C, h, w)


def _key_masks(x: torch.Tensor, meta: PartitionMeta
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(long, short) key masks, False at padded positions."""
    valid = x.new_ones(meta.n, 1, meta.h, meta.w)
    long_mask, _ = to_long_groups(valid, (meta.p_h, meta.p_w))
    short_mask = long_to_short(long_mask, meta._replace(c=1))
    return long_mask.flatten(1) > 0.5, short_mask.flatten(1) > 0.5


def interlaced_attention(x: torch.Tensor,
                         global_relation: nn.Module,
                         local_relation: nn.Module,
                         down_factor: Sequence[int] = (8, 8),
                         order: Sequence[str] = ('long', 'short'),
                         mask_padding: bool = False) -> torch.Tensor:
    """The two-step interlaced attention of ISA (spec 2.1), any map size.

    ``A_dense ~ Pi^T A_short Pi' A_long Pi`` with block-diagonal A_long and
    A_short (paper Sec. 3.2): ``global_relation`` attends within the
    long-range groups (P_h * P_w groups of Q_h x Q_w pixels P apart),
    ``local_relation`` within the short-range groups (Q_h * Q_w blocks of
    P_h x P_w pixels), in the given order.

    Args:
        x (Tensor): (n, c, h, w).
        global_relation (nn.Module): Attention of the long-range step,
            called as ``f(groups, key_mask)``.
        local_relation (nn.Module): Attention of the short-range step.
        down_factor (Sequence[int]): (P_h, P_w). Defaults to (8, 8).
        order (Sequence[str]): ``('long', 'short')`` (mmseg, the paper's
            default) or ``('short', 'long')``.
        mask_padding (bool): Whether padded positions are excluded from
            the keys. mmseg does not mask them (their zeros pass through
            the key projections); True is a deviation. Defaults to False.

    Returns:
        Tensor: (n, c, h, w).
    """
    order = tuple(order)
    if order not in ORDERS:
        raise ValueError(f'order must be one of {ORDERS}, got {order}')
    if order[0] == 'long':
        g, meta = to_long_groups(x, down_factor)
    else:
        g, meta = to_short_groups(x, down_factor)
    long_mask = short_mask = None
    if mask_padding and any(meta.pad):
        long_mask, short_mask = _key_masks(x, meta)
    if order[0] == 'long':
        g = global_relation(g, long_mask)  # (n*P_h*P_w, c, Q_h, Q_w)
        g = long_to_short(g, meta)
        g = local_relation(g, short_mask)  # (n*Q_h*Q_w, c, P_h, P_w)
        return short_to_map(g, meta)
    g = local_relation(g, short_mask)
    g = short_to_long(g, meta)
    g = global_relation(g, long_mask)
    return long_to_map(g, meta)


def _check_down_factor(down_factor: Union[int, Sequence[int]]
                       ) -> Tuple[int, int]:
    if isinstance(down_factor, int):
        down_factor = (down_factor, down_factor)
    down_factor = tuple(int(p) for p in down_factor)
    if len(down_factor) != 2 or min(down_factor) < 1:
        raise ValueError(
            f'down_factor must be two positive ints, got {down_factor}')
    return down_factor


@MODELS.register_module()
class InterlacedSparseSelfAttention(BaseModule):
    """Interlaced sparse self-attention over a feature map of any size.

    Long-range attention within interlaced groups, then short-range
    attention within local blocks (or the reverse with ``order``); the
    output has the input's shape. Costs O(N (P + Q)) against O(N^2) for
    :class:`DenseSelfAttention`, with N = h * w, P = P_h * P_w,
    Q = N / P.

    Args:
        channels (int): Input and output channels C.
        key_channels (int): Query/key channels C_k.
        down_factor (int | Sequence[int]): (P_h, P_w), the short-range
            group size. Defaults to (8, 8).
        order (Sequence[str]): ``('long', 'short')`` or
            ``('short', 'long')``. Defaults to ``('long', 'short')``.
        mask_padding (bool): Exclude padded positions from the keys
            (a deviation from mmseg). Defaults to False.
        conv_cfg (dict, optional): Config of the convs. Defaults to None.
        norm_cfg (dict, optional): Config of the norms; None for none, as
            in mmcv's ``ConvModule``. The paper uses ``dict(type='BN')``
            (SyncBN in the segmentation configs). Defaults to None.
        act_cfg (dict, optional): Config of the activations; None for
            none. The paper uses ``dict(type='ReLU')``. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 key_channels: int,
                 down_factor: Union[int, Sequence[int]] = (8, 8),
                 order: Sequence[str] = ('long', 'short'),
                 mask_padding: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = None,
                 act_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.down_factor = _check_down_factor(down_factor)
        if tuple(order) not in ORDERS:
            raise ValueError(f'order must be one of {ORDERS}, got {order}')
        self.order = tuple(order)
        self.mask_padding = mask_padding
        self.global_relation = ISSABlock(channels, key_channels, conv_cfg,
                                         norm_cfg, act_cfg)
        self.local_relation = ISSABlock(channels, key_channels, conv_cfg,
                                        norm_cfg, act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, h, w) -> (n, C, h, w)."""
        return interlaced_attention(x, self.global_relation,
                                    self.local_relation, self.down_factor,
                                    self.order, self.mask_padding)


@MODELS.register_module()
class DenseSelfAttention(BaseModule):
    """Dense self-attention over the whole map, the interface of
    :class:`InterlacedSparseSelfAttention` (for comparisons).

    One :class:`ISSABlock` (``relation``) with an N x N affinity.

    Args:
        channels (int): Input and output channels C.
        key_channels (int): Query/key channels C_k.
        conv_cfg (dict, optional): Config of the convs. Defaults to None.
        norm_cfg (dict, optional): Config of the norms; None for none, as
            in mmcv's ``ConvModule``. The paper uses ``dict(type='BN')``
            (SyncBN in the segmentation configs). Defaults to None.
        act_cfg (dict, optional): Config of the activations; None for
            none. The paper uses ``dict(type='ReLU')``. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 channels: int,
                 key_channels: int,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = None,
                 act_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.relation = ISSABlock(channels, key_channels, conv_cfg, norm_cfg,
                                  act_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, h, w) -> (n, C, h, w)."""
        return self.relation(x)


@MODELS.register_module()
class ISSAHead(BaseDecodeHead):
    """Decode head of ISANet (mmseg ``ISAHead`` layout, our name).

    ``x = in_conv(C5)`` (3x3 conv-BN-ReLU to ``channels``), ``y =`` the
    interlaced attention of ``x``, ``out = out_conv(cat[y, x])`` (1x1
    conv-BN-ReLU), then dropout and the 1x1 classifier of
    ``BaseDecodeHead``. The state_dict equals mmseg's ``ISAHead``
    (``in_conv``, ``global_relation``, ``local_relation``, ``out_conv``,
    ``conv_seg``), so its checkpoints load unchanged.

    Args:
        isa_channels (int): Query/key channels C_k of the attention.
        down_factor (int | Sequence[int]): (P_h, P_w), the short-range
            group size. Defaults to (8, 8).
        order (Sequence[str]): ``('long', 'short')`` or
            ``('short', 'long')``. Defaults to ``('long', 'short')``.
        mask_padding (bool): Exclude padded positions from the keys (a
            deviation from mmseg). Defaults to False.
        **kwargs: ``BaseDecodeHead`` arguments (``in_channels``,
            ``channels``, ``num_classes``, ``norm_cfg``, ...).
    """

    def __init__(self,
                 isa_channels: int,
                 down_factor: Union[int, Sequence[int]] = (8, 8),
                 order: Sequence[str] = ('long', 'short'),
                 mask_padding: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.down_factor = _check_down_factor(down_factor)
        if tuple(order) not in ORDERS:
            raise ValueError(f'order must be one of {ORDERS}, got {order}')
        self.order = tuple(order)
        self.mask_padding = mask_padding
        cfgs: Dict[str, ConfigType] = dict(
            conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)
        self.in_conv = ConvModule(self.in_channels, self.channels, 3,
                                  padding=1, **cfgs)
        self.global_relation = ISSABlock(self.channels, isa_channels,
                                         **cfgs)
        self.local_relation = ISSABlock(self.channels, isa_channels, **cfgs)
        self.out_conv = ConvModule(self.channels * 2, self.channels, 1,
                                   **cfgs)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (n, num_classes, h, w) from the backbone outputs."""
        x = self.in_conv(self._transform_inputs(inputs))
        y = interlaced_attention(x, self.global_relation,
                                 self.local_relation, self.down_factor,
                                 self.order, self.mask_padding)
        return self.cls_seg(self.out_conv(torch.cat([y, x], dim=1)))


def isa_cost(h: int,
             w: int,
             channels: int = 512,
             key_channels: int = 256,
             down_factor: Union[int, Sequence[int]] = (8, 8)
             ) -> Dict[str, Dict[str, int]]:
    """Affinity elements and multiply-accumulates of dense attention and
    ISA on one (h, w) map (spec 2.4, derived).

    With N pixels, every block costs per pixel ``2 (C C_k + C_k^2)`` (q, k)
    + ``C^2`` (v) + ``C^2`` (output projection) MACs, and ``N_k (C_k + C)``
    per query for ``q^T k`` and ``v A^T``. Dense: one block, N = h w,
    N_k = N. ISA: two blocks on the padded map (N = Q_h P_h Q_w P_w), with
    N_k = Q (long step) and N_k = P (short step), so the affinities hold
    N (P + Q) elements against N^2.

    Returns:
        dict: ``{'dense': {'affinity': .., 'macs': ..}, 'isa': {...}}``.
    """
    c, ck = channels, key_channels
    p_h, p_w = _check_down_factor(down_factor)
    per_pixel = 2 * (c * ck + ck * ck) + 2 * c * c
    n = h * w
    dense_aff = n * n
    q = math.ceil(h / p_h) * math.ceil(w / p_w)
    p = p_h * p_w
    n_pad = q * p
    isa_aff = n_pad * (p + q)
    return dict(
        dense=dict(affinity=dense_aff,
                   macs=n * per_pixel + dense_aff * (ck + c)),
        isa=dict(affinity=isa_aff,
                 macs=2 * n_pad * per_pixel + isa_aff * (ck + c)))

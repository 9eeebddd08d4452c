# Copyright (c) EVLab contributors.
"""HourNAS networks: the fixed net of a genotype and the one-shot supernet.

HourNAS: Extremely Fast Neural Architecture Search Through an Hourglass
Lens (Yang et al., CVPR 2021, arXiv 2005.14446). No PyTorch code exists;
the only code is a MindSpore port that evaluates one model
(mindspore-ai/models ``research/cv/HourNAS``). The block is read from that
port's ``src/hournasnet.py`` as described in the spec (``hournas.md``
2.2); the widths and strides are derived (see :mod:`.space`).
"""
import json
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS

from projects.common.nas.mutables import OneShotChoice, SlicedChoice
from projects.common.nas.ops import (
    ir_macs,
    ir_params,
    parse_op,
    se_channels,
)

from .space import (
    HOURNAS_F,
    OPS,
    chain,
    find_vital,
    genotype_list,
    resolve_arch,
)

GenotypeLike = Union[Sequence[str], Mapping[str, str], str]


class SqueezeExcite(nn.Module):
    """SE with biased 1x1 convs: pool, reduce, act, expand, sigmoid gate."""

    def __init__(self, channels: int, squeeze: int, act_cfg: dict) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = build_activation_layer(act_cfg)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


@MODELS.register_module()
class HNMBConv(nn.Module):
    """HourNAS's inverted residual op ``ir_k{k}_e{e}`` with SE (spec 2.2).

    ``1x1 conv c_in -> c_in e`` (+BN+act; kept for e = 1 as in the port,
    ``expand_when_e1``) -> ``k x k`` depthwise, stride s (+BN+act) -> SE
    (width from ``c_in``, EfficientNet's convention) -> ``1x1 conv`` to
    ``c_out`` (+BN) -> identity add when the shape allows (drop-connect in
    training).

    Args:
        c_in (int): Input channels.
        c_out (int): Output channels.
        op (str): Op name, e.g. ``'ir_k5_e6'``.
        stride (int): Depthwise stride. Defaults to 1.
        act_cfg (dict): Activation. Defaults to ``dict(type='Swish')``.
        norm_cfg (dict): Norm layer. Defaults to BN (momentum 0.1, eps
            1e-5, PyTorch's defaults, as in the port).
        se (bool): Whether to use SE. Defaults to True.
        se_base (str): ``'in'`` or ``'mid'``. Defaults to ``'in'``.
        expand_when_e1 (bool): Keep the expansion conv at e = 1.
            Defaults to True.
        drop_connect_rate (float): Drop-path rate of the residual branch.
            Defaults to 0.
    """

    def __init__(self, c_in: int, c_out: int, op: str, stride: int = 1,
                 act_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None, se: bool = True,
                 se_base: str = 'in', expand_when_e1: bool = True,
                 drop_connect_rate: float = 0.0) -> None:
        super().__init__()
        spec = parse_op(op, default_se=se)
        if spec.kind != 'ir' or spec.dilation != 1:
            raise ValueError(f'HNMBConv builds undilated ir ops, got '
                             f'{op!r}')
        act_cfg = act_cfg or dict(type='Swish')
        norm_cfg = norm_cfg or dict(type='BN')
        self.spec, self.c_in, self.c_out, self.stride = spec, c_in, c_out, \
            stride
        self.se_base, self.expand_when_e1 = se_base, expand_when_e1
        mid = c_in * spec.expand
        self.expand = None
        if spec.expand > 1 or expand_when_e1:
            self.expand = ConvModule(c_in, mid, 1, bias=False,
                                     norm_cfg=norm_cfg, act_cfg=act_cfg)
        else:
            mid = c_in
        self.depthwise = ConvModule(
            mid, mid, spec.kernel, stride, spec.kernel // 2, groups=mid,
            bias=False, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.se = SqueezeExcite(mid, se_channels(c_in, mid, se_base),
                                act_cfg) if spec.se else None
        self.project = ConvModule(mid, c_out, 1, bias=False,
                                  norm_cfg=norm_cfg, act_cfg=None)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = DropPath(drop_connect_rate) if (
            self.residual and drop_connect_rate > 0) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + self.drop_path(y) if self.residual else y

    def analytic_macs(self, input_shape: Sequence[int]) -> int:
        """MACs on an input of shape ``(1, C, H, W)`` (spec 2.2)."""
        _, _, h, w = input_shape
        return input_shape[0] * ir_macs(
            self.spec, self.c_in, self.c_out, h, self.stride, self.se_base,
            self.expand_when_e1, w_in=w)

    def analytic_params(self) -> int:
        return ir_params(self.spec, self.c_in, self.c_out, self.se_base,
                         self.expand_when_e1)


def _norm(module: ConvModule) -> nn.Module:
    return getattr(module, module.norm_name)


def _sliced_bn(bn: nn.BatchNorm2d, x: torch.Tensor, n: int
               ) -> torch.Tensor:
    """``bn`` restricted to its first ``n`` channels (running statistics
    updated in place on the slice, as ``_BatchNorm.forward`` would)."""
    factor = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) \
            if bn.momentum is None else bn.momentum
    use_batch = bn.training or bn.running_mean is None
    stats = (None, None) if bn.running_mean is None else \
        (bn.running_mean[:n], bn.running_var[:n])
    return F.batch_norm(x, *stats, bn.weight[:n], bn.bias[:n], use_batch,
                        factor, bn.eps)


class HNSharedMBConv(nn.Module):
    """The candidate ops of one position as slices of the largest one
    (weight entanglement, for :class:`~projects.common.nas.SlicedChoice`).

    One :class:`HNMBConv` with the largest kernel and expansion holds the
    weights; op ``ir_k{k}_e{e}`` uses the first ``c_in e`` expanded
    channels (and the first SE channels) and the centre ``k x k`` of the
    depthwise kernel; the projection's BN is shared. :meth:`export` copies
    the slices into a standalone :class:`HNMBConv`, which computes the
    same outputs.

    Args:
        c_in, c_out, stride, act_cfg, norm_cfg, se_base, expand_when_e1:
            See :class:`HNMBConv`.
        ops (Sequence[str]): The candidate op names (undilated ``ir``;
            ``'skip'``, the identity, too).

    Raises:
        ValueError: An op is not an ``ir`` op, or ``expand_when_e1`` is
            False while ``e = 1`` is a candidate (that op has no expansion
            conv to slice).
    """

    def __init__(self, c_in: int, c_out: int, ops: Sequence[str],
                 stride: int = 1, act_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None, se_base: str = 'in',
                 expand_when_e1: bool = True) -> None:
        super().__init__()
        self.skip = 'skip' in ops
        specs = {name: parse_op(name, default_se=True) for name in ops
                 if name != 'skip'}
        for name, spec in specs.items():
            if spec.kind != 'ir' or spec.dilation != 1:
                raise ValueError(f'HNSharedMBConv shares undilated ir ops, '
                                 f'got {name!r}')
            if spec.expand == 1 and not expand_when_e1:
                raise ValueError(
                    f'{name!r} has no expansion conv when expand_when_e1 is '
                    f'False, so it is no slice of a larger op; use '
                    f"weight_sharing='separate'")
        if not specs:
            raise ValueError('HNSharedMBConv needs at least one ir op '
                             'besides skip')
        norm_cfg = norm_cfg or dict(type='BN')
        if norm_cfg.get('type') != 'BN' or norm_cfg.get('affine') is False:
            raise ValueError(
                f'HNSharedMBConv slices plain affine BN only (a SyncBN '
                f'slice would not sync), got norm_cfg={norm_cfg}')
        kernel = max(s.kernel for s in specs.values())
        expand = max(s.expand for s in specs.values())
        self.specs = specs
        self.args = dict(c_in=c_in, c_out=c_out, stride=stride,
                         act_cfg=act_cfg, norm_cfg=norm_cfg, se=True,
                         se_base=se_base, expand_when_e1=expand_when_e1)
        self.largest = HNMBConv(op=f'ir_k{kernel}_e{expand}', **self.args)

    def _slices(self, name: str) -> Tuple[int, int, int]:
        """Expanded width, SE width and kernel offset of op ``name``."""
        spec, big = self.specs[name], self.largest
        mid = big.c_in * spec.expand
        squeeze = se_channels(big.c_in, mid, big.se_base)
        return mid, squeeze, (big.spec.kernel - spec.kernel) // 2

    def forward(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if name == 'skip' and self.skip:
            return x
        big, spec = self.largest, self.specs[name]
        mid, squeeze, off = self._slices(name)
        k = spec.kernel
        y = F.conv2d(x, big.expand.conv.weight[:mid])
        y = big.expand.activate(_sliced_bn(_norm(big.expand), y, mid))
        dw = big.depthwise
        y = F.conv2d(y, dw.conv.weight[:mid, :, off:off + k, off:off + k],
                     None, big.stride, k // 2, 1, mid)
        y = dw.activate(_sliced_bn(_norm(dw), y, mid))
        se = big.se
        s = y.mean((2, 3), keepdim=True)
        s = F.conv2d(s, se.reduce.weight[:squeeze, :mid],
                     se.reduce.bias[:squeeze])
        s = F.conv2d(se.act(s), se.expand.weight[:mid, :squeeze],
                     se.expand.bias[:mid])
        y = y * torch.sigmoid(s)
        y = _norm(big.project)(F.conv2d(y, big.project.conv.weight[:, :mid]))
        return x + y if big.residual else y

    def export(self, name: str) -> 'HNMBConv':
        """A standalone op ``name`` holding copies of its slices."""
        if name == 'skip' and self.skip:
            return nn.Identity()
        big, spec = self.largest, self.specs[name]
        mid, squeeze, off = self._slices(name)
        k = spec.kernel
        op = HNMBConv(op=name, **self.args).to(
            big.project.conv.weight.device, big.project.conv.weight.dtype)
        ref = big.state_dict()
        cuts = {
            'expand.conv.weight': (slice(mid), ),
            'depthwise.conv.weight': (slice(mid), slice(None),
                                      slice(off, off + k),
                                      slice(off, off + k)),
            'se.reduce.weight': (slice(squeeze), slice(mid)),
            'se.reduce.bias': (slice(squeeze), ),
            'se.expand.weight': (slice(mid), slice(squeeze)),
            'se.expand.bias': (slice(mid), ),
            'project.conv.weight': (slice(None), slice(mid)),
        }
        state = {}
        for key, value in op.state_dict().items():
            full = ref[key]
            cut = cuts.get(key)
            if cut is None and key.startswith(('expand.', 'depthwise.')) \
                    and full.dim() == 1:  # their norms' channels
                cut = (slice(mid), )
            state[key] = full[cut] if cut is not None else full
            if state[key].shape != value.shape:  # a bug here, not input
                raise RuntimeError(f'export of {name}: {key} sliced to '
                                   f'{tuple(state[key].shape)}, the op '
                                   f'has {tuple(value.shape)}')
        op.load_state_dict(state)
        return op


def _load_genotype_file(path: str, what: str) -> List[str]:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{what}: genotype file {path!r} does not exist (the search '
            f'stage that writes it has not run, or the path is wrong)')
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{what}: {path!r} is not JSON: {e}') from None
    genotype = data.get('genotype') if isinstance(data, dict) else data
    if genotype is None:
        raise ValueError(f'{what}: {path!r} has no "genotype" key')
    if isinstance(genotype, dict):
        return [genotype[k] for k in sorted(genotype, key=int)]
    return list(genotype)


class _HourNASBase(BaseBackbone):
    """Stem, the block chain and the head conv, shared by the fixed net
    and the supernet."""

    def __init__(self, arch: Union[str, dict], act_cfg: Optional[dict],
                 norm_cfg: Optional[dict], se_base: str,
                 expand_when_e1: bool, out_indices: Sequence[int],
                 stem_stride: Optional[int],
                 init_cfg: Optional[dict]) -> None:
        super().__init__(init_cfg)
        self.arch = resolve_arch(arch)
        self.act_cfg = act_cfg or dict(type='Swish')
        self.norm_cfg = norm_cfg or dict(type='BN')
        self.se_base, self.expand_when_e1 = se_base, expand_when_e1
        self.chain = chain(self.arch)
        self.vital = find_vital(self.chain)
        stride = self.arch.get('stem_stride', 2) if stem_stride is None \
            else stem_stride
        self.stem = ConvModule(3, self.arch['stem_channels'], 3, stride, 1,
                               bias=False, norm_cfg=self.norm_cfg,
                               act_cfg=self.act_cfg)
        last = self.chain[-1].c_out
        self.head = ConvModule(last, self.arch['head_channels'], 1,
                               bias=False, norm_cfg=self.norm_cfg,
                               act_cfg=self.act_cfg)
        n = len(self.chain) + 1
        self.out_indices = [i % n for i in out_indices]
        bad = [i for i in out_indices if not -n <= i < n]
        if bad:
            raise ValueError(f'out_indices {bad} out of range: {n - 1} '
                             f'positions and the head ({n - 1})')

    def _op(self, i: int, name: str, drop: float = 0.0) -> nn.Module:
        if name == 'skip':
            if i in self.vital:
                raise ValueError(f'position {i} is vital: no skip')
            return nn.Identity()
        b = self.chain[i]
        return HNMBConv(b.c_in, b.c_out, name, b.stride, self.act_cfg,
                        self.norm_cfg, True, self.se_base,
                        self.expand_when_e1, drop)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.out_indices:
                outs.append(x)
        x = self.head(x)
        if len(self.chain) in self.out_indices:
            outs.append(x)
        return tuple(outs)


@MODELS.register_module()
class HourNASNet(_HourNASBase):
    """The network of one genotype (HourNAS-F by default).

    Args:
        genotype (list[str] | dict | str): One op per position (``skip``
            allowed at non-vital ones), a dict ``position -> op``, or a
            genotype JSON file (``best_genotype.json`` of a search).
            Defaults to HourNAS-F.
        arch (str | dict): ``'imagenet'``, ``'toy'`` or a dict (see
            :mod:`.space`). Defaults to ``'imagenet'``.
        act_cfg (dict, optional): Activation. Defaults to Swish.
        norm_cfg (dict, optional): Norm. Defaults to BN.
        se_base (str): SE width base. Defaults to ``'in'``.
        expand_when_e1 (bool): Expansion conv at e = 1. Defaults to True.
        drop_connect_rate (float): Largest drop-path rate, scaled
            linearly with depth (EfficientNet). Defaults to 0.
        out_indices (Sequence[int]): Outputs: positions, or the head
            conv (index = number of positions, or -1). Defaults to (-1,).
        stem_stride (int, optional): Overrides the arch's (1 for CIFAR).
            Defaults to None.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, genotype: Optional[GenotypeLike] = None,
                 arch: Union[str, dict] = 'imagenet',
                 act_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None, se_base: str = 'in',
                 expand_when_e1: bool = True,
                 drop_connect_rate: float = 0.0,
                 out_indices: Sequence[int] = (-1,),
                 stem_stride: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(arch, act_cfg, norm_cfg, se_base, expand_when_e1,
                         out_indices, stem_stride, init_cfg)
        if genotype is None:
            genotype = HOURNAS_F
        if isinstance(genotype, str):
            genotype = _load_genotype_file(genotype, 'HourNASNet')
        n = len(self.chain)
        self.genotype = genotype_list(genotype, n, self.vital)
        self.blocks = nn.ModuleList(
            self._op(i, op, drop_connect_rate * i / n)
            for i, op in enumerate(self.genotype))


@MODELS.register_module()
class HourNASSupernet(_HourNASBase):
    """The one-shot supernet: every position a choice block holding each
    candidate op with its own weights (SPOS).

    ``mode='vital_only'`` is stage 1 (spec 2.3): the non-vital positions
    are fixed to ``skip`` (the identity), so only vital blocks are trained
    and searched. ``mode='full'`` is stage 2: the vital positions are fixed
    to ``fixed_vital`` (stage 1's result) and the non-vital ones are
    searched. Both modes have the same parameters, so stage 2 loads stage
    1's checkpoint as is.

    Args:
        arch (str | dict): See :class:`HourNASNet`. Defaults to
            ``'imagenet'``.
        candidates (Sequence[str]): Candidate ops. Defaults to the six of
            :data:`~.space.OPS`.
        mode (str): ``'vital_only'`` or ``'full'``. Defaults to
            ``'vital_only'``.
        fixed_vital (str | dict | list, optional): Ops of the vital
            positions (a genotype JSON file, a dict ``position -> op`` or
            a full genotype list; only the vital entries are used).
            Required in ``'full'`` mode unless ``search_vital``. Defaults
            to None.
        search_vital (bool): In ``'full'`` mode, search the vital
            positions too (the one-stage baseline). Defaults to False.
        fixed_choices (dict, optional): More ``position -> op`` to fix
            (ImageNet: ``{0: 'ir_k3_e1'}``, spec 2.2). Defaults to None.
        allow_skip (bool): Add ``skip`` to the non-vital candidates.
            Defaults to False.
        weight_sharing (str): ``'separate'``: every candidate has its own
            weights (SPOS, spec 2.3, :class:`OneShotChoice`);
            ``'entangled'``: the candidates of a position are slices of
            its largest op (:class:`HNSharedMBConv` in a
            :class:`SlicedChoice`), which is what trains on the toy
            budget (README, "Toy data"). Defaults to ``'separate'``.
        act_cfg, norm_cfg, se_base, expand_when_e1, out_indices,
            stem_stride, init_cfg: See :class:`HourNASNet`.
    """

    def __init__(self, arch: Union[str, dict] = 'imagenet',
                 candidates: Sequence[str] = OPS,
                 mode: str = 'vital_only',
                 fixed_vital: Optional[GenotypeLike] = None,
                 search_vital: bool = False,
                 fixed_choices: Optional[Mapping] = None,
                 allow_skip: bool = False,
                 weight_sharing: str = 'separate',
                 act_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None, se_base: str = 'in',
                 expand_when_e1: bool = True,
                 out_indices: Sequence[int] = (-1,),
                 stem_stride: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(arch, act_cfg, norm_cfg, se_base, expand_when_e1,
                         out_indices, stem_stride, init_cfg)
        if weight_sharing not in ('separate', 'entangled'):
            raise ValueError(f"weight_sharing must be 'separate' or "
                             f"'entangled', got {weight_sharing!r}")
        self.weight_sharing = weight_sharing
        if mode not in ('vital_only', 'full'):
            raise ValueError(f"mode must be 'vital_only' or 'full', got "
                             f'{mode!r}')
        for name in candidates:
            if parse_op(name).kind != 'ir':
                raise ValueError(f'candidates are ir ops; use allow_skip '
                                 f'for skip, got {name!r}')
        self.mode, self.candidate_ops = mode, list(candidates)
        self.allow_skip = allow_skip
        blocks = []
        for i in range(len(self.chain)):
            names = list(candidates)
            if i not in self.vital and (allow_skip or mode == 'vital_only'):
                names.append('skip')
            if weight_sharing == 'entangled':
                b = self.chain[i]
                blocks.append(SlicedChoice(HNSharedMBConv(
                    b.c_in, b.c_out, names, b.stride, self.act_cfg,
                    self.norm_cfg, self.se_base, self.expand_when_e1),
                    names, alias=str(i)))
                continue
            blocks.append(OneShotChoice(
                {name: self._op(i, name) for name in names}, alias=str(i)))
        self.blocks = nn.ModuleList(blocks)
        for k, op in (fixed_choices or {}).items():
            self.blocks[int(k)].fix(op)
        if mode == 'vital_only':
            if fixed_vital is not None or search_vital:
                raise ValueError("fixed_vital and search_vital are options "
                                 "of mode='full'")
            for i in range(len(self.chain)):
                if i in self.vital:
                    continue
                if self.blocks[i].fixed not in (None, 'skip'):
                    raise ValueError(
                        f"mode='vital_only' skips the non-vital position "
                        f'{i}; fixed_choices gives it '
                        f'{self.blocks[i].fixed!r}')
                self.blocks[i].fix('skip')
        elif not search_vital:
            if fixed_vital is None:
                raise ValueError(
                    "mode='full' needs fixed_vital (stage 1's "
                    'best_genotype.json) or search_vital=True')
            self.fix_vital(fixed_vital)

    def fix_vital(self, genotype: GenotypeLike) -> None:
        """Fix the vital positions to the ops ``genotype`` gives them."""
        if isinstance(genotype, str):
            genotype = _load_genotype_file(genotype, 'fixed_vital')
        if isinstance(genotype, Mapping):
            ops = {int(k): v for k, v in genotype.items()}
        else:
            ops = dict(enumerate(genotype))
        missing = [i for i in self.vital if i not in ops]
        if missing:
            raise ValueError(f'fixed_vital lacks the vital positions '
                             f'{missing} (vital: {self.vital})')
        for i in self.vital:
            block = self.blocks[i]
            if block.fixed is not None and block.fixed != ops[i]:
                raise ValueError(f'position {i} is fixed to {block.fixed!r}'
                                 f', fixed_vital gives {ops[i]!r}')
            block.fix(ops[i])

    def subnet_state_dict(self, genotype: GenotypeLike
                          ) -> Dict[str, torch.Tensor]:
        """The weights (backbone keys) of the standalone
        :class:`HourNASNet` of ``genotype``, inherited from this supernet,
        whichever its weight sharing (entangled ops are sliced)."""
        if isinstance(genotype, str):
            genotype = _load_genotype_file(genotype, 'genotype')
        if isinstance(genotype, Mapping):
            genotype = genotype_list(genotype, len(self.blocks))
        if len(genotype) != len(self.blocks):
            raise ValueError(f'genotype has {len(genotype)} ops, the '
                             f'supernet {len(self.blocks)} positions')
        out = {k: v for k, v in self.state_dict().items()
               if not k.startswith('blocks.')}
        for i, (block, op) in enumerate(zip(self.blocks, genotype)):
            for k, v in block.candidate_module(op).state_dict().items():
                out[f'blocks.{i}.{k}'] = v
        return out


def subnet_state_dict(supernet_state: Dict[str, torch.Tensor],
                      genotype: Union[Sequence[str], Mapping[str, str]],
                      prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """The weights of the standalone :class:`HourNASNet` of ``genotype``
    (a list, or a dict ``position -> op``), inherited from a supernet's
    state dict (keys of other candidates are dropped,
    ``blocks.i.candidates.<op>.`` becomes ``blocks.i.``)."""
    shared = [k for k in supernet_state if '.shared.' in k]
    if shared:
        raise ValueError(
            f'subnet_state_dict: {shared[0]!r} is a weight-entangled '
            f"supernet's (weight_sharing='entangled'); slice it with "
            f'HourNASSupernet.subnet_state_dict(genotype) on the built '
            f'supernet')
    if isinstance(genotype, Mapping):
        genotype = genotype_list(genotype, len(genotype))
    out = {}
    marks = [f'{prefix}blocks.{i}.candidates.{op}.'
             for i, op in enumerate(genotype)]
    for key, value in supernet_state.items():
        if '.candidates.' not in key or not key.startswith(prefix):
            out[key] = value
            continue
        for i, mark in enumerate(marks):
            if key.startswith(mark):
                out[f'{prefix}blocks.{i}.' + key[len(mark):]] = value
                break
    return out


@MODELS.register_module()
class DropoutLinearClsHead(ClsHead):
    """Dropout then a linear classifier (mmpretrain's ``LinearClsHead``
    has no dropout).

    Args:
        num_classes (int): Classes.
        in_channels (int): Input channels.
        dropout_rate (float): Dropout before the FC. Defaults to 0.2.
        **kwargs: :class:`ClsHead`'s arguments (loss, topk, init_cfg).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 dropout_rate: float = 0.2, **kwargs) -> None:
        kwargs.setdefault('init_cfg', dict(type='Normal', layer='Linear',
                                           std=0.01))
        super().__init__(**kwargs)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        return self.fc(self.dropout(self.pre_logits(feats)))

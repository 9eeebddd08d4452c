# Copyright (c) EVLab contributors.
"""HourNAS's search space: the block chain, its vital blocks and the
HourNAS-F genotype (spec ``hournas.md`` 2.1 and 2.2).

The chain is EfficientNet-B0's widths with four blocks per stage. The
widths and strides are *derived*, not read (the MindSpore port's
``architectures.py`` was not available): with them, the port's example
genotype gives 382.9 M MACs and 5.27 M parameters, the published HourNAS-F
(383 M, 5.3 M).
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Union

from projects.common.nas.ops import parse_op

#: The six candidate ops (``_se`` is implied: every op of the space has
#: SE). ``ir_k3_e3`` does not occur in the example genotype and is assumed
#: to complete the grid (spec 2.2, uncertain).
OPS = ('ir_k3_e1', 'ir_k3_e3', 'ir_k3_e6', 'ir_k5_e1', 'ir_k5_e3',
       'ir_k5_e6')

#: ImageNet arch: stem width, then per stage (width, blocks, stride), and
#: the head conv's width. Positions 0..21: stage 0 has one block (32 -> 16),
#: stages 1-5 four, stage 6 one (192 -> 320).
IMAGENET_ARCH = dict(
    stem_channels=32, stem_stride=2, head_channels=1280,
    stages=[(16, 1, 1), (24, 4, 2), (40, 4, 2), (80, 4, 2), (112, 4, 1),
            (192, 4, 2), (320, 1, 1)])

#: The toy arch of the spec (section 7): 32x32 inputs, widths about a
#: quarter of B0's, one vital and one non-vital block per stage, 3 stages.
TOY_ARCH = dict(
    stem_channels=8, stem_stride=1, head_channels=128,
    stages=[(16, 2, 2), (24, 2, 2), (40, 2, 2)])

#: HourNAS-F, the port's docstring genotype (identified as F by the MACs
#: and parameters, spec 2.2 [derived, uncertain]).
HOURNAS_F = (
    'ir_k3_e1',
    'ir_k5_e6', 'ir_k5_e1', 'ir_k5_e1', 'ir_k3_e1',
    'ir_k5_e6', 'ir_k5_e1', 'ir_k3_e1', 'ir_k5_e1',
    'ir_k5_e6', 'ir_k3_e6', 'ir_k3_e6', 'ir_k3_e6',
    'ir_k5_e6', 'ir_k5_e3', 'ir_k5_e3', 'ir_k5_e3',
    'ir_k5_e6', 'ir_k5_e6', 'ir_k3_e6', 'ir_k5_e6',
    'ir_k5_e6')

ARCHS = dict(imagenet=IMAGENET_ARCH, toy=TOY_ARCH)


@dataclass(frozen=True)
class BlockSpec:
    """One block of a chain network.

    Attributes:
        c_in (int): Input channels.
        c_out (int): Output channels.
        stride (int): Stride.
        skip (bool): Whether the block has an identity shortcut when its
            shape allows one. Defaults to True.
    """
    c_in: int
    c_out: int
    stride: int
    skip: bool = True

    @property
    def has_identity(self) -> bool:
        return self.skip and self.stride == 1 and self.c_in == self.c_out


def find_vital(blocks: Sequence[BlockSpec]) -> List[int]:
    """Indices of the vital blocks (spec 2.1): those without an identity
    shortcut (a stride, a change of width or a disabled skip), which lie on
    every input-to-output path. The others can be removed (become the
    identity) and leave a valid network."""
    return [i for i, b in enumerate(blocks) if not b.has_identity]


def resolve_arch(arch: Union[str, Mapping]) -> dict:
    """An arch by name (``'imagenet'``, ``'toy'``) or as a dict."""
    if isinstance(arch, str):
        if arch not in ARCHS:
            raise ValueError(f'unknown HourNAS arch {arch!r}; choose from '
                             f'{sorted(ARCHS)} or pass a dict')
        return dict(ARCHS[arch])
    missing = {'stem_channels', 'head_channels', 'stages'} - set(arch)
    if missing:
        raise ValueError(f'HourNAS arch dict lacks {sorted(missing)}')
    return dict(arch)


def chain(arch: Union[str, Mapping]) -> List[BlockSpec]:
    """The searchable positions of ``arch`` as a chain of blocks."""
    arch = resolve_arch(arch)
    blocks, c = [], arch['stem_channels']
    for width, depth, stride in arch['stages']:
        for j in range(depth):
            blocks.append(BlockSpec(c, width, stride if j == 0 else 1))
            c = width
    return blocks


def resnet50_chain() -> List[BlockSpec]:
    """ResNet-50's 16 bottlenecks as a chain (stem 64 ch; stages of 3, 4,
    6, 3 blocks, 256-2048 output channels): the first block of each stage
    has a projection shortcut."""
    blocks, c = [], 64
    for width, depth, stride in ((256, 3, 1), (512, 4, 2), (1024, 6, 2),
                                 (2048, 3, 2)):
        for j in range(depth):
            blocks.append(BlockSpec(c, width, stride if j == 0 else 1))
            c = width
    return blocks


def genotype_list(genotype: Union[Sequence[str], Mapping[str, str]],
                  num_positions: int,
                  vital: Optional[Sequence[int]] = None,
                  ops: Sequence[str] = OPS) -> List[str]:
    """A genotype as one op name per position, checked.

    Accepts a list, or a dict ``position -> op`` (keys ``'3'`` or 3)
    naming every position.

    Raises:
        ValueError: Wrong length, a missing position, an op the space
            lacks, or ``'skip'`` at a vital position.
    """
    if isinstance(genotype, Mapping):
        keys = {int(k): v for k, v in genotype.items()}
        missing = [i for i in range(num_positions) if i not in keys]
        extra = [k for k in keys if not 0 <= k < num_positions]
        if missing or extra:
            raise ValueError(
                f'genotype must name positions 0..{num_positions - 1}: '
                f'missing {missing}, out of range {extra}')
        genotype = [keys[i] for i in range(num_positions)]
    genotype = list(genotype)
    if len(genotype) != num_positions:
        raise ValueError(f'genotype has {len(genotype)} ops, the space '
                         f'{num_positions} positions')
    allowed = set(ops) | {'skip'}
    for i, name in enumerate(genotype):
        if name not in allowed:
            parse_op(name)  # a malformed name gets the parser's message
            raise ValueError(f'genotype position {i}: op {name!r} is not '
                             f'in the space {list(ops)}')
        if name == 'skip' and vital is not None and i in vital:
            raise ValueError(f'genotype position {i}: a vital block (no '
                             f'identity shortcut) cannot be skipped')
    return genotype


def genotype_dict(genotype: Sequence[str]) -> Dict[str, str]:
    """``['ir_k3_e1', ...]`` -> ``{'0': 'ir_k3_e1', ...}``."""
    return {str(i): op for i, op in enumerate(genotype)}

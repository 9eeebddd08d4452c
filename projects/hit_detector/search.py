# Copyright (c) EVLab contributors.
"""Hit-Detector's search (spec 2.3, a re-derivation: the search code was
never released), on the NAS core.

- **Supernet.** :class:`HitSuperBackbone`, :class:`HitSuperPAFPN` and
  :class:`HitSuperBBoxHead` are the released skeleton with a
  :class:`~projects.common.nas.DifferentiableChoice` at every searchable
  position (aliases ``backbone.<layer>``, ``neck.<cell>``,
  ``head.<block>``): linear gates in stage A (``mode='gate'``), a softmax
  in stage B (``mode='softmax'``).
- **Stage A, screening.** The gates train on the detection loss of the
  architecture half; after every gate step the exact proximal step of the
  group penalty ``sum_c lambda_c sum_n ||g_c[:, n]||_2`` shrinks each
  column (one op across one component's positions). The top ``K_c``
  columns by norm are written to ``sub_spaces.json``.
- **Stage B, trinity search.** The supernet over the screened sub-spaces;
  ``L_det + gamma C(alpha) / C_ref`` with the expected cost
  ``C = sum_l sum_k softmax(alpha_l)_k cost_lk`` (or the hinge on a
  ``cost_target``); the argmax genotype and a retrain config are written.
- **Alternation** (first-order DARTS): per iteration a weight step on a
  batch of half A with the architecture frozen, then (after the warm-up
  epochs) an architecture step on a batch of half B with the weights
  frozen. :class:`HalfSplitSampler` splits the training images by id,
  :class:`HitSearchLoop` zips the halves, and
  :class:`HitSearchOptimWrapperConstructor` gives the two optimisers.

The stage A penalty is the group term only (the cost penalty is defined on
a softmax, which linear gates are not): our reading, spec 2.3 is silent.
"""
import json
import os.path as osp
from copy import deepcopy
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import (
    DefaultOptimWrapperConstructor,
    OptimWrapper,
    OptimWrapperDict,
)
from mmengine.registry import (
    DATA_SAMPLERS,
    HOOKS,
    LOOPS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    OPTIM_WRAPPERS,
    OPTIMIZERS,
)
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from ..common.errors import EVLabError
from ..common.nas import DifferentiableChoice, Mutator
from ..common.nas.export import export_config, save_json
from ..common.resume import ExactResumeEpochBasedTrainLoop
from .models import (
    HIT_HEAD,
    HIT_STRIDES,
    HitBackbone,
    HitBBoxHead,
    HitPAFPN,
    check_genotype,
)
from .ops import build_op, op_macs, op_params, parse_op_name

COMPONENTS = ('backbone', 'neck', 'head')
#: the whole space O_all (spec 2.3, N = 28): ir k{3,5,7} x e{1,3,6} x
#: d{1,2,3} without k7 dilated (21), sd k{3,5} x d{1,2,3} (6), conv_1x1
WHOLE_SPACE = tuple(
    [f'ir_k{k}_e{e}' + (f'_d{d}' if d > 1 else '')
     for k in (3, 5, 7) for e in (1, 3, 6) for d in (1, 2, 3)
     if not (k == 7 and d > 1)]
    + [f'sd_k{k}_d{d}' for k in (3, 5) for d in (1, 2, 3)] + ['conv_1x1'])


class SearchPositions:
    """Mixin of the supernet components: a choice block over ``op_space``
    at each searchable position, the template's op elsewhere."""
    component = ''

    def _init_space(self, op_space: Sequence[str],
                    searchable: Optional[Sequence[int]], mode: str,
                    temperature: float, default: Sequence[int]) -> None:
        if mode not in ('gate', 'softmax'):
            raise ValueError(f"mode must be 'gate' or 'softmax', got "
                             f'{mode!r}')
        space = [parse_op_name(name).name for name in op_space]
        if len(set(space)) != len(space) or not space:
            raise ValueError(f'{self.component} op_space must name '
                             f'distinct ops, got {list(op_space)}')
        searchable = list(default if searchable is None else searchable)
        bad = [i for i in searchable if i not in default]
        if bad:
            raise ValueError(f'{self.component}: positions {bad} are not '
                             f'searchable; the positions are {list(default)}')
        # plain attributes, set before nn.Module.__init__ runs
        object.__setattr__(self, 'op_space', space)
        object.__setattr__(self, 'searchable', searchable)
        object.__setattr__(self, 'search_mode', mode)
        object.__setattr__(self, 'temperature', temperature)

    def _position(self, index: int, op: str, c_in: int, c_out: int,
                  stride: int, norm_cfg: Optional[dict]) -> nn.Module:
        if index not in self.searchable:
            return build_op(op, c_in, c_out, stride, norm_cfg)
        block = DifferentiableChoice(
            {name: build_op(name, c_in, c_out, stride, norm_cfg)
             for name in self.op_space},
            alias=f'{self.component}.{index}', temperature=self.temperature,
            mode='linear' if self.search_mode == 'gate' else 'softmax')
        block.cost_shape = (c_in, c_out, stride)
        return block


@MMPRETRAIN_MODELS.register_module()
class HitSuperBackbone(SearchPositions, HitBackbone):
    """The backbone supernet: layers ``searchable`` (default 1-21) choose
    from ``op_space``; the stem, the last 1x1 conv and the other layers
    are ``genotype``'s.

    Args:
        op_space (list[str]): The candidate ops.
        searchable (list[int], optional): Searchable layers (1-21).
        mode (str): ``'gate'`` (stage A) or ``'softmax'`` (stage B).
        temperature (float): Softmax temperature. Defaults to 1.
        **kwargs: :class:`HitBackbone`'s arguments.
    """
    component = 'backbone'

    def __init__(self, op_space: Sequence[str],
                 searchable: Optional[Sequence[int]] = None,
                 mode: str = 'softmax', temperature: float = 1.0,
                 **kwargs) -> None:
        n = len(kwargs.get('strides', HIT_STRIDES))
        self._init_space(op_space, searchable, mode, temperature,
                         range(1, n - 1))
        super().__init__(**kwargs)


@MMDET_MODELS.register_module()
class HitSuperPAFPN(SearchPositions, HitPAFPN):
    """The neck supernet: cells ``searchable`` (default all 8) choose from
    ``op_space``. Arguments as :class:`HitSuperBackbone` plus
    :class:`HitPAFPN`'s."""
    component = 'neck'

    def __init__(self, op_space: Sequence[str],
                 searchable: Optional[Sequence[int]] = None,
                 mode: str = 'softmax', temperature: float = 1.0,
                 **kwargs) -> None:
        self._init_space(op_space, searchable, mode, temperature,
                         range(2 * len(kwargs['in_channels'])))
        super().__init__(**kwargs)


@MMDET_MODELS.register_module()
class HitSuperBBoxHead(SearchPositions, HitBBoxHead):
    """The RoI head supernet: blocks ``searchable`` (default all) choose
    from ``op_space``. Arguments as :class:`HitSuperBackbone` plus
    :class:`HitBBoxHead`'s."""
    component = 'head'

    def __init__(self, op_space: Sequence[str],
                 searchable: Optional[Sequence[int]] = None,
                 mode: str = 'softmax', temperature: float = 1.0,
                 **kwargs) -> None:
        n = len(kwargs.get('blocks', HIT_HEAD))
        self._init_space(op_space, searchable, mode, temperature, range(n))
        super().__init__(**kwargs)


def _ceil_div(size: int, stride: int) -> int:
    return -(-size // stride)


def position_costs(detector: nn.Module, cost_input_size: int = 640,
                   cost_type: str = 'macs', head_cost_rois: int = 1000
                   ) -> Dict[str, torch.Tensor]:
    """``alias -> cost of each candidate`` (in the block's order) of every
    unfixed choice block of a detector built from the supernet components.

    MACs are analytic (spec 2.3) at the position's feature size for a
    ``cost_input_size`` square input; the RoI blocks' per-RoI MACs (7x7)
    are multiplied by ``head_cost_rois``. ``cost_type='params'`` counts
    parameters instead.
    """
    if cost_type not in ('macs', 'params'):
        raise ValueError(f"cost_type must be 'macs' or 'params', got "
                         f'{cost_type!r}')
    sizes: Dict[str, int] = {}
    backbone, neck = detector.backbone, detector.neck
    head = detector.roi_head.bbox_head
    if isinstance(backbone, HitBackbone):
        size, level_sizes = cost_input_size, []
        for i, stride in enumerate(backbone.strides):
            sizes[f'backbone.{i}'] = size
            size = _ceil_div(size, stride)
            if i in backbone.out_indices:
                level_sizes.append(size)
    else:
        level_sizes = [_ceil_div(cost_input_size, 4 * 2 ** i)
                       for i in range(len(neck.in_channels))]
    if isinstance(neck, HitPAFPN):
        n = len(neck.in_channels)
        for i in range(2 * n):
            sizes[f'neck.{i}'] = level_sizes[i % n]
    if isinstance(head, HitBBoxHead):
        for i in range(len(head.blocks)):
            sizes[f'head.{i}'] = head.roi_feat_size[0]
    costs = {}
    for alias, block in Mutator(detector).blocks.items():
        if block.fixed is not None:
            continue
        c_in, c_out, stride = block.cost_shape
        size = sizes[alias]
        row = []
        for name in block.choices:
            spec = parse_op_name(name)
            if cost_type == 'params':
                row.append(op_params(spec, c_in, c_out))
            else:
                macs = op_macs(spec, c_in, c_out, size, stride)
                row.append(macs * (head_cost_rois
                                   if alias.startswith('head.') else 1))
        costs[alias] = torch.tensor(row, dtype=torch.float64)
    return costs


def expected_cost(blocks: Dict[str, DifferentiableChoice],
                  costs: Dict[str, torch.Tensor]) -> torch.Tensor:
    """``C(alpha) = sum_l sum_k softmax(alpha_l / T)_k cost_lk``."""
    total = None
    for alias, cost in costs.items():
        w = blocks[alias].weights()
        term = (w * cost.to(w.dtype)).sum()
        total = term if total is None else total + term
    return total


@torch.no_grad()
def proximal_group_shrink(gates: torch.Tensor, step: float) -> torch.Tensor:
    """The exact proximal step of ``step * sum_n ||G[:, n]||_2`` on a
    ``(positions, ops)`` gate matrix: each column is scaled by
    ``max(0, 1 - step / ||G[:, n]||)`` (a column of norm <= ``step``
    becomes exactly 0)."""
    norms = gates.norm(dim=0)
    scale = torch.clamp(1 - step / norms.clamp_min(1e-30), min=0.0)
    scale[norms == 0] = 0.0
    return gates * scale


@MMDET_MODELS.register_module()
class HitDetSearcher(BaseModel):
    """A detector supernet searched by alternating weight and architecture
    steps (spec 2.3).

    Args:
        detector (dict): The detector's config: a fixed Hit-Detector
            (``HitBackbone`` / ``HitPAFPN`` / ``HitBBoxHead``, e.g.
            ``{{_base_.model}}`` of ``toy_hitdet.py``), turned into the
            supernet by ``op_space``, ``searchable`` and ``mode``; or one
            built of the ``HitSuper*`` components already.
        op_space (list | dict, optional): The candidate ops of every
            component (a list), or per component (``backbone`` /
            ``neck`` / ``head``). Defaults to :data:`WHOLE_SPACE`.
        searchable (dict, optional): Searchable positions per component
            (default: all of them).
        mode (str): ``'gate'`` (stage A, screening) or ``'softmax'``
            (stage B). Defaults to 'softmax'.
        sub_spaces (str | dict, optional): Stage B: the screened
            sub-spaces (a ``sub_spaces.json`` path or its dict), which
            replace each component's ``op_space``.
        cost_type (str): ``'macs'`` or ``'params'``. Defaults to 'macs'.
        cost_input_size (int): Input side the MACs are costed at.
            Defaults to 640.
        head_cost_rois (int): RoIs the head blocks' cost is multiplied
            by. Defaults to 1000.
        gamma (float): Weight of the cost penalty. Defaults to 0.02.
        cost_target (float, optional): Use the hinge
            ``gamma * max(0, C_net / target - 1)`` on the network's expected
            searched cost instead; refused when below the cheapest
            network. Defaults to None.
        lambdas (dict): Stage A: ``lambda_c`` per component. Defaults to
            5e-4 each.
        top_k (dict): Stage A: ``K_c`` ops kept per component. Defaults to
            backbone 8, neck 8, head 6.
    """

    def __init__(self, detector: dict,
                 op_space: Union[None, Sequence[str], dict] = None,
                 searchable: Optional[dict] = None,
                 mode: str = 'softmax',
                 sub_spaces: Union[None, str, dict] = None,
                 cost_type: str = 'macs', cost_input_size: int = 640,
                 head_cost_rois: int = 1000, gamma: float = 0.02,
                 cost_target: Optional[float] = None,
                 lambdas: Optional[dict] = None,
                 top_k: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        detector = to_supernet(detector, op_space, searchable, mode)
        if sub_spaces is not None:
            detector = apply_sub_spaces(detector, sub_spaces)
        self.detector = MMDET_MODELS.build(detector)
        self.mutator = Mutator(self.detector)
        modes = {self._component_of(c).search_mode for c in COMPONENTS
                 if isinstance(self._component_of(c), SearchPositions)}
        if len(modes) != 1:
            raise ValueError(f'the supernet components must share one '
                             f'mode, got {sorted(modes)}')
        self.mode = modes.pop()
        self.gamma, self.cost_target = gamma, cost_target
        self.lambdas = {**dict(backbone=5e-4, neck=5e-4, head=5e-4),
                        **(lambdas or {})}
        self.top_k = {**dict(backbone=8, neck=8, head=6), **(top_k or {})}
        self.costs = position_costs(self.detector, cost_input_size,
                                    cost_type, head_cost_rois)
        self.cost_ref = float(sum(c.max() for c in self.costs.values()))
        self.cost_min = float(sum(c.min() for c in self.costs.values()))
        if cost_target is not None and cost_target < self.cost_min:
            raise EVLabError(
                f'cost_target={cost_target:,.0f} is below the cheapest '
                f'network of the space: its searched positions cost '
                f'{self.cost_min:,.0f} {cost_type} at least')
        #: set by HitSearchLoop: whether this epoch steps the architecture
        self.arch_enabled = False

    # ---- pieces -----------------------------------------------------------

    def _component_of(self, name: str) -> nn.Module:
        return dict(backbone=self.detector.backbone, neck=self.detector.neck,
                    head=self.detector.roi_head.bbox_head)[name]

    def arch_parameters(self) -> List[nn.Parameter]:
        return self.mutator.arch_parameters()

    def weight_parameters(self) -> List[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def component_blocks(self, name: str) -> List[DifferentiableChoice]:
        return [b for a, b in self.mutator.blocks.items()
                if a.startswith(name + '.') and b.fixed is None]

    def penalty(self) -> torch.Tensor:
        """``gamma C / C_ref`` (or the hinge on ``cost_target``)."""
        cost = expected_cost(self.mutator.blocks, self.costs)
        if self.cost_target is not None:
            return self.gamma * torch.clamp(cost / self.cost_target - 1,
                                            min=0)
        return self.gamma * cost / self.cost_ref

    # ---- the alternation --------------------------------------------------

    def _step(self, data: dict, wrapper: OptimWrapper, params_on: list,
              params_off: list, penalty: bool) -> Dict[str, torch.Tensor]:
        flags = [p.requires_grad for p in params_off]
        for p in params_off:
            p.requires_grad_(False)
        try:
            with wrapper.optim_context(self):
                data = self.detector.data_preprocessor(data, True)
                losses = self.detector._run_forward(data, mode='loss')
                if penalty:
                    losses['loss_cost'] = self.penalty()
                loss, log_vars = self.parse_losses(losses)
            wrapper.update_params(loss)
        finally:
            for p, flag in zip(params_off, flags):
                p.requires_grad_(flag)
        return log_vars

    def train_step(self, data, optim_wrapper) -> Dict[str, torch.Tensor]:
        """``data``: ``dict(weights=batch_a, arch=batch_b)`` (``arch`` may
        be None: weights only); ``optim_wrapper``: ``weights`` and
        ``arch`` wrappers."""
        if not isinstance(optim_wrapper, OptimWrapperDict):
            raise EVLabError('HitDetSearcher needs the optimisers of '
                             'HitSearchOptimWrapperConstructor '
                             '(weights and arch)')
        if not (isinstance(data, dict) and 'weights' in data):
            data = dict(weights=data, arch=None)
        arch = self.arch_parameters()
        weights = self.weight_parameters()
        log_vars = self._step(data['weights'], optim_wrapper['weights'],
                              weights, arch, penalty=False)
        if self.arch_enabled and data.get('arch') is not None:
            arch_vars = self._step(data['arch'], optim_wrapper['arch'],
                                   arch, weights,
                                   penalty=self.mode == 'softmax')
            log_vars.update({f'arch_{k}': v for k, v in arch_vars.items()})
            if self.mode == 'gate':
                lr = optim_wrapper['arch'].get_lr()['lr'][0]
                self.shrink_gates(lr)
        return log_vars

    def shrink_gates(self, lr: float) -> None:
        """The proximal step of the group penalty, per component."""
        for name in COMPONENTS:
            blocks = self.component_blocks(name)
            if not blocks:
                continue
            gates = torch.stack([b.arch_param.detach() for b in blocks])
            shrunk = proximal_group_shrink(gates, lr * self.lambdas[name])
            for b, row in zip(blocks, shrunk):
                b.arch_param.data.copy_(row)

    def val_step(self, data):
        return self.detector.val_step(data)

    def test_step(self, data):
        return self.detector.test_step(data)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        return self.detector(inputs, data_samples, mode)

    # ---- export -----------------------------------------------------------

    def column_norms(self, name: str) -> Dict[str, float]:
        """Gate column norms of a component (stage A)."""
        blocks = self.component_blocks(name)
        gates = torch.stack([b.arch_param.detach() for b in blocks])
        return dict(zip(blocks[0].choices, gates.norm(dim=0).tolist()))

    def sub_spaces(self) -> Dict[str, List[str]]:
        """Stage A: the top ``K_c`` ops by gate column norm per component
        (ties in the space's order)."""
        out = {}
        for name in COMPONENTS:
            if not self.component_blocks(name):
                continue
            norms = self.column_norms(name)
            order = sorted(norms, key=lambda op: -norms[op])
            out[name] = order[:self.top_k[name]]
        return out

    def genotype(self, chosen: Optional[Dict[str, str]] = None
                 ) -> Dict[str, List[str]]:
        """Every position's op: ``chosen`` (alias -> op; default the
        argmax) at searchable positions, the template's elsewhere
        (``backbone`` 21, ``neck`` 8, ``head`` blocks)."""
        if chosen is None:
            chosen = self.mutator.export()
        out = {}
        for name in COMPONENTS:
            comp = self._component_of(name)
            template = list(comp.block_ops if name == 'head'
                            else comp.genotype)
            first = 1 if name == 'backbone' else 0
            for alias, op in chosen.items():
                if alias.startswith(name + '.'):
                    template[int(alias.split('.')[1]) - first] = op
            out[name] = template
        return out


_SUPER = {'HitBackbone': 'HitSuperBackbone', 'HitPAFPN': 'HitSuperPAFPN',
          'HitBBoxHead': 'HitSuperBBoxHead'}


def _parts(detector: dict) -> Dict[str, dict]:
    return dict(backbone=detector['backbone'], neck=detector['neck'],
                head=detector['roi_head']['bbox_head'])


def to_supernet(detector: dict, op_space: Union[None, Sequence[str], dict],
                searchable: Optional[dict], mode: str) -> dict:
    """A fixed Hit-Detector config -> its supernet config: each
    ``Hit*`` component becomes ``HitSuper*`` with its ``op_space``,
    ``searchable`` positions and ``mode`` (components of another type are
    left fixed)."""
    detector = deepcopy(dict(detector))
    spaces = op_space if isinstance(op_space, dict) else {
        c: list(op_space or WHOLE_SPACE) for c in COMPONENTS}
    unknown = set(spaces) - set(COMPONENTS) | \
        set(searchable or {}) - set(COMPONENTS)
    if unknown:
        raise EVLabError(f'op_space / searchable name unknown components '
                         f'{sorted(unknown)}; they are {COMPONENTS}')
    for name, part in _parts(detector).items():
        scope, _, kind = part['type'].rpartition('.')
        if kind in _SUPER and name in spaces:
            part['type'] = (scope + '.' if scope else '') + _SUPER[kind]
            kind = _SUPER[kind]
        if kind in _SUPER.values():
            if name in spaces:
                part['op_space'] = list(spaces[name])
            if searchable and name in searchable:
                part['searchable'] = list(searchable[name])
            part['mode'] = mode
    return detector


def load_sub_spaces(sub_spaces: Union[str, dict]) -> Dict[str, List[str]]:
    """Read ``sub_spaces.json`` (or take its dict); errors name the
    file."""
    if isinstance(sub_spaces, str):
        if not osp.isfile(sub_spaces):
            raise EVLabError(f'sub-spaces file {sub_spaces!r} does not '
                             f'exist: run the screening stage first')
        with open(sub_spaces) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise EVLabError(f'{sub_spaces!r} is not JSON: {e}') \
                    from None
    else:
        data = dict(sub_spaces)
    data = data.get('sub_spaces', data)
    for name, ops in data.items():
        if name not in COMPONENTS or not isinstance(ops, list) or not ops:
            raise EVLabError(f'sub-spaces: {name!r} must be one of '
                             f'{COMPONENTS} with a list of ops')
        for op in ops:
            parse_op_name(op)
    return data


def apply_sub_spaces(detector: dict, sub_spaces: Union[str, dict]) -> dict:
    """The detector config with each component's ``op_space`` replaced by
    its screened sub-space."""
    spaces = load_sub_spaces(sub_spaces)
    detector = deepcopy(detector)
    parts = _parts(detector)
    for name, ops in spaces.items():
        if 'op_space' not in parts[name]:
            raise EVLabError(f'sub-spaces name the {name}, but the '
                             f'detector\'s {name} is not a supernet')
        parts[name]['op_space'] = list(ops)
    return detector


def check_genotype_in_sub_spaces(genotype: Dict[str, List[str]],
                                 sub_spaces: Union[str, dict],
                                 searchable: Optional[dict] = None) -> None:
    """Refuse a genotype naming an op outside a component's screened
    sub-space (at the ``searchable`` positions, all by default)."""
    spaces = load_sub_spaces(sub_spaces)
    for name, ops in genotype.items():
        if name not in spaces:
            continue
        first = 1 if name == 'backbone' else 0
        where = (searchable or {}).get(name)
        sub = [ops[i - first] for i in where] if where else ops
        check_genotype(sub, len(sub), name, allowed=spaces[name])


# ---- data, loop, optimisers, hooks -----------------------------------------

@DATA_SAMPLERS.register_module()
class HalfSplitSampler(DefaultSampler):
    """A :class:`DefaultSampler` over one half of the dataset: images with
    an even position (``part='A'``, the weights) or an odd one (``'B'``,
    the architecture) in the dataset's order (by image id for COCO), so
    the halves are disjoint and fixed across epochs and ranks."""

    def __init__(self, dataset, part: str = 'A', shuffle: bool = True,
                 seed: Optional[int] = None, round_up: bool = True) -> None:
        if part not in ('A', 'B'):
            raise ValueError(f"part must be 'A' or 'B', got {part!r}")
        self.part = part
        super().__init__(dataset, shuffle=shuffle, seed=seed,
                         round_up=round_up)
        self.indices = list(range(0 if part == 'A' else 1, len(dataset), 2))
        if not self.indices:
            raise EVLabError(f'HalfSplitSampler: the dataset has '
                             f'{len(dataset)} image(s); half {part} is '
                             f'empty')
        n = len(self.indices)
        if self.round_up:
            self.num_samples = -(-n // self.world_size)
            self.total_size = self.num_samples * self.world_size
        else:
            self.num_samples = -(-(n - self.rank) // self.world_size)
            self.total_size = n

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.indices), generator=g).tolist()
        else:
            order = list(range(len(self.indices)))
        idx = [self.indices[i] for i in order]
        if self.round_up:
            idx = (idx * (self.total_size // len(idx) + 1))[:self.total_size]
        return iter(idx[self.rank:self.total_size:self.world_size])


@LOOPS.register_module()
class HitSearchLoop(ExactResumeEpochBasedTrainLoop):
    """The search's train loop: each iteration takes a batch of the
    weights' half (the runner's ``train_dataloader``, a
    :class:`HalfSplitSampler` ``part='A'``) and one of the architecture's
    half (``arch_dataloader``, ``part='B'``, cycled), and calls
    ``model.train_step(dict(weights=..., arch=...))``; the architecture
    steps from epoch ``arch_warmup_epochs`` on. ``arch_dataloader``'s
    unset keys are ``train_dataloader``'s (so ``dict(sampler=dict(
    type='HalfSplitSampler', part='B'))`` is enough). A killed search
    resumes exactly (EVLab's exact resume, the architecture half's batches
    replayed with the weights')."""

    def __init__(self, runner, dataloader, arch_dataloader,
                 max_epochs: int, arch_warmup_epochs: int = 0,
                 val_begin: int = 1, val_interval: int = 1) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval)
        if not 0 <= arch_warmup_epochs <= max_epochs:
            raise ValueError(f'arch_warmup_epochs must be in [0, '
                             f'{max_epochs}], got {arch_warmup_epochs}')
        self.arch_warmup_epochs = arch_warmup_epochs
        if isinstance(arch_dataloader, dict):
            # unset keys (the dataset, its pipeline) are the training
            # dataloader's: usually only the sampler's part differs
            merged = deepcopy(dict(runner.cfg.train_dataloader))
            merged.update(deepcopy(dict(arch_dataloader)))
            arch_dataloader = runner.build_dataloader(merged,
                                                      seed=runner.seed)
        self.arch_dataloader = arch_dataloader
        self._arch_iter = None

    def _searcher(self) -> HitDetSearcher:
        model = self.runner.model
        return getattr(model, 'module', model)

    def _next_arch_batch(self):
        if self._arch_iter is None:
            self._arch_iter = iter(self.arch_dataloader)
        try:
            return next(self._arch_iter)
        except StopIteration:
            sampler = getattr(self.arch_dataloader, 'sampler', None)
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(self._epoch + 1)
            self._arch_iter = iter(self.arch_dataloader)
            return next(self._arch_iter)

    def run_epoch(self, skip: int = 0, state: Optional[dict] = None) -> None:
        searcher = self._searcher()
        searcher.arch_enabled = self._epoch >= self.arch_warmup_epochs
        self._arch_iter = None
        if searcher.arch_enabled:
            for _ in range(skip):  # the batches trained before the kill
                self._next_arch_batch()
        super().run_epoch(skip=skip, state=state)

    def run_iter(self, idx, data_batch) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=idx,
                              data_batch=data_batch)
        batch = dict(weights=data_batch, arch=None)
        if self._searcher().arch_enabled:
            batch['arch'] = self._next_arch_batch()
        outputs = self.runner.model.train_step(
            batch, optim_wrapper=self.runner.optim_wrapper)
        self.runner.call_hook('after_train_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=outputs)
        self._iter += 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class HitSearchOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``optim_wrapper=dict(constructor='HitSearchOptimWrapperConstructor',
    weights=dict(type='OptimWrapper', optimizer=...), arch=dict(...))``
    -> an :class:`OptimWrapperDict` whose ``weights`` wrapper holds every
    parameter but the ``arch_param`` ones and whose ``arch`` wrapper holds
    those (the two optimisers of the alternation)."""

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        cfg = dict(optim_wrapper_cfg)
        missing = [k for k in ('weights', 'arch') if k not in cfg]
        if missing:
            raise EVLabError(f'HitSearchOptimWrapperConstructor needs '
                             f'optim_wrapper.weights and .arch; missing '
                             f'{missing}')
        self.cfgs = {k: dict(cfg[k]) for k in ('weights', 'arch')}

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = getattr(model, 'module', model)
        arch = [p for n, p in model.named_parameters() if 'arch_param' in n]
        weights = [p for n, p in model.named_parameters()
                   if 'arch_param' not in n]
        if not arch:
            raise EVLabError('the model has no architecture parameters '
                             '(arch_param): is it a supernet?')
        wrappers = {}
        for key, params in (('weights', weights), ('arch', arch)):
            cfg = dict(self.cfgs[key])
            cfg.setdefault('type', 'OptimWrapper')
            optimizer = OPTIMIZERS.build(
                dict(cfg.pop('optimizer'), params=params))
            wrappers[key] = OPTIM_WRAPPERS.build(
                dict(cfg, optimizer=optimizer))
        return OptimWrapperDict(**wrappers)


@HOOKS.register_module()
class HitSearchExportHook(Hook):
    """Writes the search's result after every epoch and at the end:
    stage A ``sub_spaces.json`` (with the column norms), stage B
    ``genotype.json`` and, with ``template``, ``retrain_config.py`` (the
    fixed detector config with the genotype written in).

    Args:
        template (str, optional): The fixed-architecture config the
            genotype is written into.
    """
    priority = 'LOW'

    def __init__(self, template: Optional[str] = None) -> None:
        self.template = template

    def after_train_epoch(self, runner) -> None:
        self.export(runner)

    def after_train(self, runner) -> None:
        path = self.export(runner)
        runner.logger.info(f'search result: {path}')

    def export(self, runner) -> str:
        model = runner.model
        searcher = getattr(model, 'module', model)
        from mmengine.dist import is_main_process
        if searcher.mode == 'gate':
            path = osp.join(runner.work_dir, 'sub_spaces.json')
            if is_main_process():
                save_json(path, dict(
                    sub_spaces=searcher.sub_spaces(),
                    column_norms={c: searcher.column_norms(c)
                                  for c in COMPONENTS
                                  if searcher.component_blocks(c)},
                    epoch=runner.epoch))
            return path
        genotype = searcher.genotype()
        path = osp.join(runner.work_dir, 'genotype.json')
        if is_main_process():
            save_json(path, dict(genotype=genotype, epoch=runner.epoch,
                                 weights={a: b.weights().tolist() for a, b
                                          in searcher.mutator.blocks.items()
                                          }))
            if self.template is not None:
                genotype_to_config(genotype, self.template, osp.join(
                    runner.work_dir, 'retrain_config.py'))
        return path


def genotype_to_config(genotype: Dict[str, List[str]], template: str,
                       out: str) -> str:
    """Write ``template`` (a fixed Hit-Detector config) with ``genotype``
    (``backbone`` / ``neck`` / ``head`` op lists) as a standalone config."""
    updates = {}
    keys = dict(backbone='model.backbone.genotype',
                neck='model.neck.genotype',
                head='model.roi_head.bbox_head.blocks')
    for name, ops in genotype.items():
        if name not in keys:
            raise EVLabError(f'genotype: unknown component {name!r}; '
                             f'expected {list(keys)}')
        updates[keys[name]] = list(ops)
    return export_config(template, out, updates,
                         header='Hit-Detector genotype: ' +
                         json.dumps(genotype))

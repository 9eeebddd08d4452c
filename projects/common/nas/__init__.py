# Copyright (c) EVLab contributors.
"""EVLab's NAS core (docs/nas.md): choice blocks, the mutator, the cost
table, evolution, BN recalibration, the held-out split, export, and the
log-likelihood fitness, and the single-path sampler hook and evolution
search loop that drive them from a config. Nothing here imports a host
library: the hook, loop, metric and dataset wrapper register into
mmengine's root registries, which mmdet, mmseg and mmpretrain configs all
reach."""
from .bn import recalibrate_bn
from .data import HeldOutSplit, heldout_indices
from .estimator import CostTable, build_cost_table
from .evolution import EvolutionSearcher, load_state, save_state
from .export import export_config, load_genotype, save_genotype, save_json
from .hooks import SinglePathSamplerHook, load_probs
from .loops import EvolutionSearchLoop
from .metrics import LogLikelihood
from .mutables import (
                       ChoiceBlock,
                       DifferentiableChoice,
                       OneShotChoice,
                       SlicedChoice,
)
from .mutator import Genotype, Mutator
from .ops import (
                       OpSpec,
                       ir_macs,
                       ir_params,
                       op_macs,
                       op_params,
                       parse_op,
                       se_channels,
)

__all__ = [
    'ChoiceBlock', 'CostTable', 'DifferentiableChoice', 'EvolutionSearchLoop',
    'EvolutionSearcher', 'Genotype', 'HeldOutSplit', 'LogLikelihood',
    'Mutator',
    'OneShotChoice', 'OpSpec', 'SinglePathSamplerHook', 'build_cost_table',
    'export_config', 'heldout_indices', 'ir_macs', 'ir_params',
    'load_genotype', 'load_probs', 'load_state', 'op_macs', 'op_params',
    'parse_op', 'recalibrate_bn', 'save_genotype', 'save_json', 'save_state',
    'se_channels', 'SlicedChoice'
]

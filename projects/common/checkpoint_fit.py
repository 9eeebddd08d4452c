# Copyright (c) EVLab contributors.
"""Refuse to evaluate a checkpoint that was written for another model.

mmengine loads a test checkpoint with ``strict=False``: the tensors whose
names and shapes fit are copied, the rest of the model keeps its random
initialisation, and only a log warning says so. A checkpoint of another
model thus evaluates random weights and prints chance-level accuracy.
:class:`CheckpointFitHook` (registered by ``tools/test.py``) counts, when
the Runner has read the checkpoint and before it copies the weights, how
many tensors of the evaluated model the checkpoint fills, and stops the run
when it fills fewer than half of them.

A distiller evaluates one of its submodules (the student, or the teacher
with ``predict_with='teacher'``), so only that submodule is counted: a full
distiller checkpoint fits its distiller config whatever its teacher and
adapters hold, and a student exported by
``tools/model_converters/distill_to_student.py`` fits the student's config.
"""
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from .errors import EVLabError

#: Key renames mmengine applies before loading (``Runner.load_checkpoint``'s
#: default ``revise_keys``).
_REVISE = [(re.compile(r'^module\.'), '')]


@dataclass
class Fit:
    """How a checkpoint fits the evaluated part of a model.

    Args:
        prefix (str): The evaluated submodule's prefix in the model's
            ``state_dict`` (``'student.'`` for a distiller, else '').
        total (int): Tensors (parameters and buffers) under ``prefix``,
            BatchNorm's ``num_batches_tracked`` counters left out.
        matched (int): Those the checkpoint holds with the same shape.
        missing (list[str]): Those it lacks.
        mismatched (list[str]): ``'name (ckpt shape) vs (model shape)'``.
        hint (str): What the checkpoint seems to be instead, or ''.
    """
    prefix: str
    total: int
    matched: int
    missing: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    hint: str = ''

    @property
    def fits(self) -> bool:
        """At least half of the evaluated tensors are filled."""
        return 2 * self.matched >= self.total


def _state_dict(checkpoint: Any) -> Dict[str, Any]:
    state = checkpoint
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        state = checkpoint['state_dict']
    if not isinstance(state, dict):
        return {}
    out = {}
    for key, value in state.items():
        for regex, repl in _REVISE:
            key = regex.sub(repl, key)
        out[key] = value
    return out


def _shape(value: Any) -> Optional[tuple]:
    shape = getattr(value, 'shape', None)
    return None if shape is None else tuple(shape)


def evaluated_prefix(model: nn.Module) -> str:
    """The ``state_dict`` prefix of the part of ``model`` that test runs."""
    from .distill import BaseDistiller
    if isinstance(model, BaseDistiller):
        return f'{model.predict_with}.'
    return ''


def checkpoint_fit(model: nn.Module, checkpoint: Any) -> Fit:
    """Count how many evaluated tensors of ``model`` ``checkpoint`` fills.

    Args:
        model (nn.Module): The model (a wrapper is unwrapped).
        checkpoint: What the Runner read: ``{'state_dict': ...}`` or a bare
            state dict.
    """
    if is_model_wrapper(model):
        model = model.module
    prefix = evaluated_prefix(model)
    # BN's num_batches_tracked does not change what the model computes
    own = {k: v for k, v in model.state_dict().items()
           if k.startswith(prefix) and not k.endswith('num_batches_tracked')}
    state = _state_dict(checkpoint)
    fit = Fit(prefix=prefix, total=len(own), matched=0)
    for key, value in own.items():
        if key not in state:
            fit.missing.append(key)
        elif _shape(state[key]) != _shape(value):
            fit.mismatched.append(f'{key} {_shape(state[key])} vs '
                                  f'{_shape(value)}')
        else:
            fit.matched += 1
    if not fit.fits:
        fit.hint = _what_it_is(own, state, prefix)
    return fit


def _what_it_is(own: Dict[str, Any], state: Dict[str, Any],
                prefix: str) -> str:
    """A hint when the checkpoint is the distiller's or the student's."""
    if not prefix and any(k.startswith('student.') for k in state):
        stripped = sum(f'student.{k}' in state for k in own)
        if 2 * stripped >= len(own):
            return ('It is a distiller checkpoint: test it with its '
                    'distiller config, or export the student with '
                    'tools/model_converters/distill_to_student.py. ')
    if prefix:
        bare = sum(k[len(prefix):] in state for k in own)
        if 2 * bare >= len(own):
            return (f'It holds the {prefix[:-1]} alone: test it with the '
                    f'{prefix[:-1]}\'s own config. ')
    return ''


def describe(fit: Fit, filename: str, config: str) -> str:
    """One line: how many tensors matched, and examples of the rest."""
    part = (f'the {fit.prefix[:-1]} (the part that test evaluates) of '
            if fit.prefix else '')
    examples = (fit.mismatched[:1] + fit.missing[:1])[:2]
    return (f'checkpoint {filename!r} matches {fit.matched} of {fit.total} '
            f'parameter and buffer tensors of {part}the model in '
            f'{config!r} ({len(fit.missing)} missing, '
            f'{len(fit.mismatched)} of another shape, e.g. '
            f'{"; ".join(examples)}): it was written for another model, and '
            f'the rest would be evaluated with random weights. {fit.hint}')


class CheckpointFitHook(Hook):
    """Stop ``tools/test.py`` when the checkpoint does not fit the model.

    Runs in ``after_load_checkpoint``, i.e. on the checkpoint the Runner
    has just read and before it copies the weights into the model.

    Args:
        filename (str): The checkpoint, for the message.
        config (str): The config file, for the message.
        allow_partial (bool): Warn (one ``warning:`` line on stderr) and
            evaluate anyway. Defaults to False.
        flag (str): The command-line flag that sets ``allow_partial``.
            Defaults to ``'--allow-partial-checkpoint'``.
    """

    priority = 'HIGHEST'  # before EMAHook & co. read the state dict

    def __init__(self, filename: str, config: str,
                 allow_partial: bool = False,
                 flag: str = '--allow-partial-checkpoint'):
        self.filename = filename
        self.config = config
        self.allow_partial = allow_partial
        self.flag = flag

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        fit = checkpoint_fit(runner.model, checkpoint)
        if fit.total == 0 or fit.fits:
            return
        message = describe(fit, self.filename, self.config)
        if not self.allow_partial:
            raise EVLabError(f'{message}Pass {self.flag} to evaluate anyway.')
        print(f'warning: {message}Evaluating anyway ({self.flag}).',
              file=sys.stderr)

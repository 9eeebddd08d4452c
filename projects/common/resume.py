# Copyright (c) EVLab contributors.
"""Exact resume: a run killed at any moment and resumed from its newest
checkpoint ends with the weights of an uninterrupted run.

mmengine 0.10.7 resumes an epoch-based run at the start of the epoch the
checkpoint was written in. That is right only for epoch checkpoints:

- an iteration checkpoint written at an epoch's last iteration still
  records the old epoch (``meta.epoch`` is the epoch in progress), so a
  resumed run trains that epoch again, and a finished run resumed trains
  once more;
- an iteration checkpoint inside an epoch restarts the epoch instead of
  continuing it;
- the random state of the main process (data augmentation with
  ``num_workers=0``, Mixup/CutMix, drop path, RoI sampling) is not saved:
  the runner reseeds at start, so a resumed run draws other numbers;
- the validation that follows a checkpoint is lost when the kill comes
  between the two.

Two pieces fix it, and :func:`enable_exact_resume` puts both into a config
(``tools/train.py`` calls it):

- :class:`ExactResumeHook` saves the random state of every rank (Python,
  numpy, torch, CUDA) and the number of iterations per epoch into each
  checkpoint, and hands them to the loop when a run resumes;
- :class:`ExactResumeEpochBasedTrainLoop` and
  :class:`ExactResumeIterBasedTrainLoop` continue at the exact place the
  checkpoint was written: they replay the data loader over the batches
  already trained (loading them, as mmengine's iteration loop does, so that
  the workers' augmentation draws stay in step), restore the random state
  and then run what followed the checkpoint in the uninterrupted run (the
  rest of the epoch, its end-of-epoch hooks, the validation due).
  Resuming a finished run trains nothing.

Bit-identical on the same machine, with the same number of processes and
data loader settings. Seeded runs are deterministic per machine, not across
CPUs or GPUs, so a resume on another machine continues correctly but not
bit-identically. ``persistent_workers=True`` keeps each worker's random
state across epochs, which no checkpoint holds: with random augmentation,
use ``persistent_workers=False`` (EVLab's toy configs do) for bit-exact
resume; the loop warns otherwise.
"""
import json
import os
import os.path as osp
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS, LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from .errors import EVLabError

#: Key of EVLab's resume state in a checkpoint's ``meta``.
META_KEY = 'evlab_resume'
#: Written into the work dir when a run has finished (train and last val).
FINISHED_FILE = 'finished.json'


def get_rng_state() -> Dict[str, Any]:
    """The random state of this process, in types ``weights_only`` loads.

    Returns:
        dict: ``python`` (``random.getstate()``), ``numpy`` (the legacy
        global generator's state with its key as a list) and ``torch`` (a
        uint8 tensor); ``cuda`` (list of tensors) when CUDA is initialised.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=(name, keys.tolist(), int(pos), int(has_gauss), float(gauss)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore a state from :func:`get_rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state(
        (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _checkpoint_hook(runner) -> Optional[CheckpointHook]:
    return next((h for h in runner.hooks if isinstance(h, CheckpointHook)),
                None)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save what an exact resume needs into every checkpoint.

    Into ``checkpoint['meta']['evlab_resume']``: the random state of each
    rank (see :func:`get_rng_state`) at the moment the checkpoint is
    written, and the train loader's iterations per epoch. On resume it
    passes them to the EVLab train loop, which restores them at the right
    moment (after replaying the data loader). With several processes the
    states are gathered (one collective) just before an iteration or epoch
    on which the checkpoint hook will save, since mmengine saves on rank 0
    only.

    Priority ``LOW``: after the hooks that act on an iteration's outputs,
    before mmengine's ``CheckpointHook`` (``VERY_LOW``).
    """

    priority = 'LOW'

    def __init__(self) -> None:
        self._gathered: Optional[List[Dict[str, Any]]] = None
        self.resume_state: Optional[Dict[str, Any]] = None

    # -- saving --------------------------------------------------------
    def _gather_if_saving(self, runner, saving: bool) -> None:
        if get_world_size() > 1 and saving:
            self._gathered = all_gather_object(get_rng_state())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        hook = _checkpoint_hook(runner)
        if hook is None or hook.by_epoch:
            return
        self._gather_if_saving(
            runner, hook.every_n_train_iters(runner, hook.interval,
                                             hook.save_begin)
            or (hook.save_last and hook.is_last_train_iter(runner)))

    def after_train_epoch(self, runner) -> None:
        hook = _checkpoint_hook(runner)
        if hook is None or not hook.by_epoch:
            return
        self._gather_if_saving(
            runner, hook.every_n_epochs(runner, hook.interval,
                                        hook.save_begin)
            or (hook.save_last and hook.is_last_train_epoch(runner)))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._gathered or [get_rng_state()]
        self._gathered = None
        loop = runner.train_loop
        by_epoch = isinstance(loop, EpochBasedTrainLoop)
        checkpoint['meta'][META_KEY] = dict(
            rng=states,
            world_size=len(states),
            iters_per_epoch=len(loop.dataloader) if by_epoch else None)

    # -- loading -------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.resume_state = checkpoint.get('meta', {}).get(META_KEY)

    # -- finished runs -------------------------------------------------
    def before_train(self, runner) -> None:
        if runner.iter == 0 and runner.rank == 0:
            # a new run in this work dir: an old marker means nothing
            path = osp.join(runner.work_dir, FINISHED_FILE)
            if osp.isfile(path):
                os.remove(path)

    def after_train(self, runner) -> None:
        if runner.rank == 0:
            with open(osp.join(runner.work_dir, FINISHED_FILE), 'w') as f:
                json.dump(dict(epoch=runner.epoch, iter=runner.iter), f)


class _ExactResumeMixin:
    """What both EVLab train loops share: the resume state and its use."""

    def _resume_state(self) -> Optional[Dict[str, Any]]:
        """The resume state of the checkpoint, None when not resuming."""
        if self._iter == 0 and self._epoch == 0:
            return None
        hook = next((h for h in self.runner.hooks
                     if isinstance(h, ExactResumeHook)), None)
        state = hook.resume_state if hook is not None else None
        if state is None:
            print_log(
                'resume: the checkpoint has no EVLab resume state (written '
                'without ExactResumeHook), so the random state is not '
                'restored and the run will not be bit-identical to an '
                'uninterrupted one', logger='current', level=30)
            return {}
        world = get_world_size()
        if state.get('world_size') != world:
            print_log(
                f'resume: the checkpoint was written by '
                f'{state.get("world_size")} processes and this run has '
                f'{world}: the random state is not restored',
                logger='current', level=30)
            return {}
        return state

    def _restore_rng(self, state: Dict[str, Any]) -> None:
        if state.get('rng'):
            set_rng_state(state['rng'][get_rank()])

    def _finished(self) -> bool:
        """Whether the work dir says the run finished at this iteration."""
        path = osp.join(self.runner.work_dir, FINISHED_FILE)
        if self._iter < self._max_iters or not osp.isfile(path):
            return False
        with open(path) as f:
            marker = json.load(f)
        return marker.get('iter') == self._iter

    def _warn_persistent_workers(self) -> None:
        loader = self.dataloader
        if getattr(loader, 'persistent_workers', False) and \
                loader.num_workers > 0:
            print_log(
                'resume: train_dataloader.persistent_workers=True keeps '
                'the workers\' random state across epochs, which a '
                'checkpoint cannot hold: with random augmentation the '
                'resumed run is not bit-identical to an uninterrupted one '
                '(set persistent_workers=False for that)',
                logger='current', level=30)


@LOOPS.register_module()
class ExactResumeEpochBasedTrainLoop(_ExactResumeMixin, EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that resumes where the checkpoint
    was written, inside an epoch or at its end (see the module docstring).

    Takes the arguments of ``EpochBasedTrainLoop``; without a resume it runs
    exactly as upstream.
    """

    def run(self) -> torch.nn.Module:
        """Launch training (or continue it after a resume)."""
        self.runner.call_hook('before_train')
        state = self._resume_state()
        if state is not None:
            self._continue(state)
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            self._val_if_due()
        self.runner.call_hook('after_train')
        return self.runner.model

    def _val_if_due(self) -> None:
        """The validation upstream's ``run`` does after each epoch."""
        self._decide_current_val_interval()
        if (self.runner.val_loop is not None
                and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0
                     or self._epoch == self._max_epochs)):
            self.runner.val_loop.run()

    def _continue(self, state: Dict[str, Any]) -> None:
        """Finish what followed the checkpoint in the uninterrupted run."""
        n = len(self.dataloader)
        saved_n = state.get('iters_per_epoch')
        if saved_n is not None and saved_n != n:
            raise EVLabError(
                f'resume: the checkpoint was written with {saved_n} '
                f'iterations per epoch, but this run\'s train_dataloader '
                f'has {n} (another dataset, batch size or number of '
                f'processes?); resume with the settings of the run that '
                f'wrote it, or start a new run with load_from')
        done = self._iter - self._epoch * n
        if not 0 <= done <= n:
            raise EVLabError(
                f'resume: the checkpoint says epoch {self._epoch}, iteration '
                f'{self._iter}, which does not fit {n} iterations per epoch')
        if self._finished():
            print_log(f'resume: the run finished at epoch {self._epoch}, '
                      f'iteration {self._iter}; nothing left to do',
                      logger='current')
            self._epoch = max(self._epoch, self._max_epochs)
            return
        self._warn_persistent_workers()
        if done == 0:
            # an epoch checkpoint, written at the end of epoch
            # `self._epoch`; the validation came next
            print_log(f'resume: after epoch {self._epoch}', logger='current')
            self._restore_rng(state)
            self._val_if_due()
            return
        print_log(f'resume: epoch {self._epoch + 1}, after iteration '
                  f'{done} of {n}', logger='current')
        self.run_epoch(skip=done, state=state)
        self._val_if_due()

    def run_epoch(self, skip: int = 0,
                  state: Optional[Dict[str, Any]] = None) -> None:
        """Iterate one epoch, or its rest after ``skip`` trained batches.

        Args:
            skip (int): Batches of this epoch trained before the
                checkpoint. They are loaded and dropped (so the workers'
                random draws stay as in the uninterrupted run), then the
                random state of the checkpoint is restored. Defaults to 0.
            state (dict, optional): The checkpoint's resume state.
                Defaults to None.
        """
        if skip == 0:
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        n = len(self.dataloader)
        # the end of an epoch: no batch is left, and the uninterrupted run
        # made no new loader iterator before its end-of-epoch hooks
        batches = iter(self.dataloader) if skip < n else iter(())
        if skip < n:
            print_log(f'resume: replaying the data loader over the {skip} '
                      f'batches already trained in this epoch',
                      logger='current')
            for _ in range(skip):
                next(batches)
        self._restore_rng(state or {})
        for idx, data_batch in enumerate(batches, start=skip):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1


@LOOPS.register_module()
class ExactResumeIterBasedTrainLoop(_ExactResumeMixin, IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` that restores the random state on
    resume and runs the validation due after the checkpoint's iteration.

    Upstream already replays the data loader over the trained iterations;
    without a resume it runs exactly as upstream.
    """

    def run(self) -> torch.nn.Module:
        """Launch training (or continue it after a resume)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        state = self._resume_state()
        if state is not None:
            if self._finished():
                print_log(f'resume: the run finished at iteration '
                          f'{self._iter}; nothing left to do',
                          logger='current')
                self.runner.call_hook('after_train_epoch')
                self.runner.call_hook('after_train')
                return self.runner.model
            self._warn_persistent_workers()
            print_log(f'resume: replaying the data loader over the '
                      f'{self._iter} iterations already trained',
                      logger='current')
            for _ in range(self._iter):
                next(self.dataloader_iterator)
            self._restore_rng(state)
            self._val_if_due()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._val_if_due()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _val_if_due(self) -> None:
        """The validation upstream's ``run`` does after each iteration."""
        self._decide_current_val_interval()
        if (self.runner.val_loop is not None
                and self._iter >= self.val_begin
                and (self._iter % self.val_interval == 0
                     or self._iter == self._max_iters)):
            self.runner.val_loop.run()


_UPSTREAM_LOOPS = {
    'EpochBasedTrainLoop': 'ExactResumeEpochBasedTrainLoop',
    'IterBasedTrainLoop': 'ExactResumeIterBasedTrainLoop',
}


def enable_exact_resume(cfg) -> None:
    """Make a config's run resume exactly (``tools/train.py`` calls this).

    Swaps mmengine's epoch- or iteration-based train loop (``type`` or the
    ``by_epoch`` shorthand) for EVLab's and adds :class:`ExactResumeHook`.
    A custom loop of another type is left alone (and gets the hook, which
    only adds the random state to its checkpoints).
    """
    train_cfg = cfg.get('train_cfg')
    if train_cfg is not None:
        kind = str(train_cfg.get('type', '')).split('.')[-1]
        if not kind and 'by_epoch' in train_cfg:
            kind = ('EpochBasedTrainLoop' if train_cfg.pop('by_epoch')
                    else 'IterBasedTrainLoop')
        if kind in _UPSTREAM_LOOPS:
            train_cfg['type'] = 'mmengine.' + _UPSTREAM_LOOPS[kind]
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).endswith('ExactResumeHook')
               for h in hooks):
        hooks.append(dict(type='mmengine.ExactResumeHook'))
    cfg.custom_hooks = hooks
    # the dumped config (work dir, checkpoint meta) then builds anywhere
    imports = cfg.get('custom_imports')
    if imports is not None and __name__ not in imports.get('imports', []):
        imports['imports'] = list(imports.get('imports', [])) + [__name__]

# Copyright (c) EVLab contributors.
"""Training-time hooks shared by all EVLab runs."""
import sys
import time
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A one-line progress bar over the whole run, with loss and ETA.

    On a terminal the line is redrawn in place; in a log file (not a TTY) a
    line is printed every ``log_every`` percent. Only rank 0 prints.

    Args:
        width (int): Characters of the bar. Defaults to 30.
        log_every (int): Percent between lines when not on a terminal.
            Defaults to 10.
    """

    priority = 'VERY_LOW'

    def __init__(self, width: int = 30, log_every: int = 10) -> None:
        self.width = width
        self.log_every = log_every
        self._t0: Optional[float] = None
        self._last_pct = -1

    def before_train(self, runner) -> None:
        self._t0 = time.time()
        self._start_iter = runner.iter

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if runner.rank != 0:
            return
        done, total = runner.iter + 1, runner.max_iters
        pct = int(100 * done / max(total, 1))
        tty = sys.stdout.isatty()
        if not tty and pct // self.log_every == self._last_pct // \
                self.log_every and done != total:
            return
        self._last_pct = pct
        elapsed = time.time() - (self._t0 or time.time())
        rate = elapsed / max(done - self._start_iter, 1)
        eta = int(rate * (total - done))
        filled = int(self.width * done / max(total, 1))
        bar = '#' * filled + '.' * (self.width - filled)
        loss = ''
        if outputs and 'loss' in outputs:
            value = outputs['loss']
            if hasattr(value, 'detach'):
                value = value.detach()
            loss = f'  loss {float(value):.3f}'
        epoch = ''
        if runner.max_epochs:
            epoch = f'  epoch {runner.epoch + 1}/{runner.max_epochs}'
        line = (f'[{bar}] {pct:3d}%  iter {done}/{total}{epoch}{loss}'
                f'  eta {eta // 60:02d}:{eta % 60:02d}')
        end = '\n' if (not tty or done == total) else ''
        sys.stdout.write(('\r' if tty else '') + line + end)
        sys.stdout.flush()

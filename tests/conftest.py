# Copyright (c) EVLab contributors.
"""Shared fixtures: the repository root on sys.path, toy data, tool runs."""
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import List, Optional

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def root() -> str:
    return ROOT


@pytest.fixture(scope='session')
def toy_data() -> str:
    """The default toy datasets under data/, generated when missing."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
    try:
        import make_toy_data
    finally:
        sys.path.pop(0)
    out = osp.join(ROOT, 'data')
    for task in make_toy_data.TASKS:
        make_toy_data.make(task, out)
    return out


def run_tool(args: List[str], cwd: Optional[str] = None,
             env: Optional[dict] = None, timeout: int = 600
             ) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (or a shell script) like a user would."""
    full_env = dict(os.environ)
    full_env.pop('EVLAB_DEBUG', None)
    full_env['PYTHON'] = sys.executable
    full_env.update(env or {})
    cmd = args if args[0].endswith('.sh') else [sys.executable] + args
    if cmd[0].endswith('.sh'):
        cmd = ['bash'] + cmd
    return subprocess.run(cmd, cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='session')
def tool():
    return run_tool


@pytest.fixture(scope='session')
def cls_smoke_options() -> List[str]:
    """``--cfg-options`` that shrink a toy classification config to one
    epoch of two batches of 4 images, one validation batch, a checkpoint
    and a log line per iteration (for "trains through the tools" tests)."""
    return [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.batch_size=4', 'train_dataloader.dataset.indices=8',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'val_dataloader.dataset.indices=4', 'val_dataloader.batch_size=4',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1'
    ]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a process group)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

# Copyright (c) EVLab contributors.
"""Distributed runs without GPUs.

mmengine's launchers call ``torch.cuda.set_device`` and default to nccl, so
``--launcher pytorch`` crashes on a machine without GPUs. When no GPU is
visible, :func:`setup_cpu_distributed` starts a gloo process group from the
launcher's environment itself (mmengine then skips its own init) and makes
the model wrapper a DDP without device ids. With GPUs it does nothing, and
upstream behaviour (nccl, SyncBN where configs ask for it) is unchanged.
"""
import os
import subprocess
import warnings
from datetime import timedelta
from typing import Tuple

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from .errors import EVLabError


def _env_int(name: str, launcher: str) -> int:
    if name not in os.environ:
        raise EVLabError(
            f'--launcher {launcher} needs the environment variable {name}, '
            f'which is not set: start the run through tools/dist_train.sh '
            f'(torchrun) or tools/slurm_train.sh (srun).')
    return int(os.environ[name])


def _rank_and_world(launcher: str) -> Tuple[int, int, int]:
    """(rank, local_rank, world_size) from the launcher's environment."""
    if launcher == 'pytorch':
        names = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE')
    elif launcher == 'slurm':
        names = ('SLURM_PROCID', 'SLURM_LOCALID', 'SLURM_NTASKS')
        if 'MASTER_ADDR' not in os.environ:
            nodes = os.environ.get('SLURM_NODELIST', 'localhost')
            try:
                first = subprocess.run(
                    ['scontrol', 'show', 'hostname', nodes], check=False,
                    capture_output=True, text=True).stdout.split()
            except FileNotFoundError:
                raise EVLabError(
                    '--launcher slurm: `scontrol` is not on PATH, so the '
                    'first node of SLURM_NODELIST cannot be found; run '
                    'inside a slurm job (tools/slurm_train.sh) or set '
                    'MASTER_ADDR') from None
            os.environ['MASTER_ADDR'] = first[0] if first else 'localhost'
        os.environ.setdefault('MASTER_PORT', '29500')
    elif launcher == 'mpi':
        names = ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK',
                 'OMPI_COMM_WORLD_SIZE')
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29500')
    else:
        raise EVLabError(f'unknown --launcher {launcher!r}')
    rank, local_rank, world = (_env_int(n, launcher) for n in names)
    # mmengine and the samplers read these
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank),
                      WORLD_SIZE=str(world))
    return rank, local_rank, world


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Start a gloo process group when there is no GPU.

    Args:
        cfg (Config): The run's config; its ``model_wrapper_cfg`` gets
            ``device_ids=None`` and ``env_cfg.dist_cfg.backend`` becomes
            ``'gloo'``.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: Whether a CPU process group was started.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    rank, _, world = _rank_and_world(launcher)
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    timeout = cfg.env_cfg.dist_cfg.get('timeout', 1800)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo', rank=rank, world_size=world,
            timeout=timedelta(seconds=timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    if cfg.get('sync_bn'):
        warnings.warn('sync_bn needs GPUs; ignored on this CPU run',
                      stacklevel=2)
        cfg.sync_bn = None
    return True

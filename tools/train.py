#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Train a model from an EVLab config (mmdet, mmseg or mmpretrain).

The config's ``default_scope`` decides which host library builds the run;
this script imports none of them by name. Flags follow mmdet 3.x.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

# mmengine and mmcv import pkg_resources (hence setuptools<81), which warns
# on every start; the warning is not the user's concern
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

from projects.common import checkpoint, dist, resume, runtime  # noqa: E402
from projects.common.errors import EVLabError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision (needs a GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the total batch '
                        'size against the config\'s auto_scale_lr')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or, without a path, from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (older: --local_rank)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace):
    """The run's config: the file, then the command-line flags."""
    cfg = runtime.load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    runtime.set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        runtime.enable_amp(cfg)
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise EVLabError(
                f'--auto-scale-lr needs `auto_scale_lr = dict('
                f'base_batch_size=...)` in {args.config!r}')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        latest = checkpoint.find_resume_checkpoint(cfg.work_dir)
        if latest is None:
            print(f'--resume: no checkpoint in {cfg.work_dir}, starting '
                  f'from scratch')
        else:
            cfg.resume, cfg.load_from = True, latest
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise EVLabError(f'--resume: checkpoint {args.resume!r} does '
                             f'not exist')
        cfg.resume, cfg.load_from = True, args.resume
    if not cfg.get('resume') and cfg.get('load_from') and osp.isdir(
            cfg.load_from):  # a previous stage's work dir
        latest = checkpoint.find_resume_checkpoint(cfg.load_from)
        if latest is None:
            raise EVLabError(f'load_from: no checkpoint in the folder '
                             f'{cfg.load_from!r}; run the stage that '
                             f'writes it first')
        print(f'load_from: {latest}')
        cfg.load_from = latest
    return cfg


@runtime.cli
def main() -> None:
    args = parse_args()
    cfg = build_config(args)
    runtime.check_datasets(cfg, ['train_dataloader', 'val_dataloader'])
    checkpoint.install()
    checkpoint.use_atomic_checkpoints(cfg)
    resume.enable_exact_resume(cfg)
    dist.setup_cpu_distributed(cfg, args.launcher)
    runner = runtime.build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()

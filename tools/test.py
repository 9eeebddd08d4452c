#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Test (evaluate) a checkpoint with an EVLab config.

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
from mmengine.evaluator import DumpResults  # noqa: E402

# resume registers the exact-resume hook and loops that the config
# train.py dumps into its work_dir names, so that config tests too
from projects.common import checkpoint, dist, resume, runtime  # noqa: E402,F401
from projects.common.checkpoint_fit import CheckpointFitHook  # noqa: E402
from projects.common.errors import EVLabError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out', help='dump the predictions to this .pkl')
    parser.add_argument('--show-dir',
                        help='save images with predictions drawn here')
    parser.add_argument(
        '--allow-partial-checkpoint', action='store_true',
        help='evaluate even when the checkpoint fills fewer than half of '
        'the model\'s tensors (the rest keep random weights)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. test_dataloader.batch_size=1')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


@runtime.cli
def main() -> None:
    args = parse_args()
    cfg = runtime.load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    runtime.set_work_dir(cfg, args.config, args.work_dir)
    if not osp.isfile(args.checkpoint):
        raise EVLabError(f'checkpoint {args.checkpoint!r} does not exist')
    cfg.load_from = args.checkpoint
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise EVLabError(f'--out must end with .pkl or .pickle, got '
                         f'{args.out!r}')
    if args.show_dir is not None:
        runtime.enable_visualization(cfg, args.show_dir)
    runtime.check_datasets(cfg, ['test_dataloader'])
    checkpoint.install()
    dist.setup_cpu_distributed(cfg, args.launcher)
    runner = runtime.build_runner(cfg)
    runner.register_hook(
        CheckpointFitHook(args.checkpoint, args.config,
                          allow_partial=args.allow_partial_checkpoint))
    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()

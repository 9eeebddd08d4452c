#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""`make demo`: train and evaluate a detector on the toy COCO set.

Runs ``tools/train.py`` and then ``tools/test.py`` exactly as a user would,
shows a progress bar while training, and prints the final bbox mAP.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/baselines/retinanet_r18_toy_det.py'


def run(cmd) -> None:
    print('$ ' + ' '.join(cmd), flush=True)
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        sys.exit(f'demo: command failed with exit code {code}')


def latest_metrics(work_dir: str) -> dict:
    """Metrics of the newest test run in ``work_dir``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', '*.json')),
                   key=osp.getmtime)
    if not files:
        sys.exit(f'demo: no metrics were written under {work_dir}')
    with open(files[-1]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    args = parser.parse_args()
    work_dir = osp.join(ROOT, args.work_dir)
    py = sys.executable
    # the config plus a progress bar in place of the periodic log lines
    os.makedirs(work_dir, exist_ok=True)
    demo_cfg = osp.join(work_dir, 'demo_config.py')
    with open(demo_cfg, 'w') as f:
        f.write(f"_base_ = [{osp.join(ROOT, args.config)!r}]\n"
                "custom_hooks = [dict(type='ProgressBarHook')]\n"
                "default_hooks = dict(logger=dict(interval=100000))\n")
    run([py, 'tools/train.py', demo_cfg, '--work-dir', work_dir])
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    test_dir = osp.join(work_dir, 'test')
    run([py, 'tools/test.py', demo_cfg, ckpt, '--work-dir', test_dir])
    metrics = latest_metrics(test_dir)
    keys = [k for k in metrics if k.endswith('bbox_mAP')]
    if not keys:
        sys.exit(f'demo: no bbox_mAP among the metrics {sorted(metrics)}')
    print(f'\nRetinaNet-R18 on toy COCO (val, {os.path.basename(ckpt)}): '
          f'bbox mAP = {metrics[keys[0]]:.3f}  '
          f'(mAP@0.5 = {metrics.get(keys[0] + "_50", float("nan")):.3f})')


if __name__ == '__main__':
    main()

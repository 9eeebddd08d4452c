# Copyright (c) EVLab contributors.
"""The toy TNT config trains and evaluates through tools/train.py."""
import glob
import json
import math
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
FEW = [
    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
    'train_dataloader.batch_size=4', 'train_dataloader.dataset.indices=8',
    'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
    'val_dataloader.dataset.indices=4', 'val_dataloader.batch_size=4',
    'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'
]


def test_toy_tnt_trains_through_the_tools(toy_data, tool, tmp_path):
    config = osp.join(ROOT, 'configs', 'tnt', 'tnt_toy_cls.py')
    work = tmp_path / 'work'
    res = tool([osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
                str(work), '--cfg-options'] + FEW,
               cwd=str(tmp_path), env={'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    losses = [r['loss'] for r in rows if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert any('accuracy/top1' in r for r in rows)
    assert osp.isfile(work / 'epoch_1.pth')

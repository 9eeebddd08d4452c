# Copyright (c) EVLab contributors.
"""The toy TNT config trains and evaluates through tools/train.py."""
import glob
import json
import math
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def test_toy_tnt_trains_through_the_tools(toy_data, tool, tmp_path,
                                          cls_smoke_options):
    config = osp.join(ROOT, 'configs', 'tnt', 'tnt_toy_cls.py')
    work = tmp_path / 'work'
    res = tool([osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
                str(work), '--cfg-options'] + cls_smoke_options,
               cwd=str(tmp_path), env={'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    losses = [r['loss'] for r in rows if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert any('accuracy/top1' in r for r in rows)
    assert osp.isfile(work / 'epoch_1.pth')

# Copyright (c) EVLab contributors.
"""The toy P2Net config trains through tools/train.py, validates with the
Market-1501 protocol and tests through tools/test.py, which draws ranked
lists with --show-dir."""
import glob
import json
import math
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
KEYS = ('reid/mAP', 'reid/mAP_ir', 'reid/mINP', 'reid/Rank-1',
        'reid/Rank-5', 'reid/Rank-10')


def test_toy_p2net_trains_validates_and_tests(toy_data, tool, tmp_path,
                                              cls_smoke_options):
    # the whole val set: the first few items would be queries only
    smoke = [o for o in cls_smoke_options
             if not o.startswith(('val_dataloader.dataset.indices',
                                  'val_dataloader.batch_size'))]
    config = osp.join(ROOT, 'configs', 'p2net', 'toy_p2net_dpb.py')
    work = tmp_path / 'work'
    res = tool([osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
                str(work), '--cfg-options'] + smoke,
               cwd=str(tmp_path), env={'OMP_NUM_THREADS': '1'})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    losses = [r['loss'] for r in rows if 'loss' in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    val = [r for r in rows if 'reid/mAP' in r]
    assert len(val) == 1
    for key in KEYS:
        assert 0 <= val[0][key] <= 100, key
    assert val[0]['reid/skipped_queries'] == 0
    ckpt = work / 'epoch_1.pth'
    assert osp.isfile(ckpt)

    show = tmp_path / 'ranked'
    res = tool([osp.join(ROOT, 'tools', 'test.py'), config, str(ckpt),
                '--work-dir', str(tmp_path / 'test'), '--show-dir',
                str(show), '--cfg-options', 'test_dataloader.num_workers=0',
                'test_evaluator.max_show=3'],
               cwd=str(tmp_path), env={'OMP_NUM_THREADS': '1'})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert 'reid/Rank-1' in out and 'reid/mAP' in out
    pictures = sorted(glob.glob(str(show / '*.png')))
    assert len(pictures) == 3

# Copyright (c) EVLab contributors.
"""The toy manifold KD config trains through tools/train.py, with the
teacher loaded from a checkpoint by the Runner (never at build time)."""
import glob
import json
import math
import os.path as osp

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def test_toy_distillation_trains(build_model, toy_data, tool, tmp_path,
                                 cls_smoke_options):
    teacher = build_model('teacher')
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # trained-looking weights: non-uniform logits
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    teacher_ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}},
               teacher_ckpt)
    config = osp.join(ROOT, 'configs', 'manifold_kd', 'toy_vit_manifold.py')
    work = tmp_path / 'work'
    res = tool([osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
                str(work), '--cfg-options',
                f'model.teacher_ckpt={teacher_ckpt}'] + cls_smoke_options,
               cwd=str(tmp_path), env={'OMP_NUM_THREADS': '1'})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert f'loaded teacher weights from {teacher_ckpt}' in out
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    train_rows = [r for r in rows if 'loss' in r]
    assert len(train_rows) == 2  # 8 images, batch 4, logged every step
    keys = ['loss_cls', 'loss_kd', 'loss_mf_intra', 'loss_mf_inter',
            'loss_mf_rand']
    for row in train_rows:
        for key in keys + ['loss']:
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    assert any('accuracy/top1' in r for r in rows)
    # the checkpoint holds the loaded (not re-initialised) teacher
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu',
                      weights_only=False)
    state = ckpt['state_dict']
    for k, v in teacher.state_dict().items():
        assert torch.equal(state[f'teacher.{k}'], v), k

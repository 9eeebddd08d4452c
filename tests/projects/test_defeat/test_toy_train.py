# Copyright (c) EVLab contributors.
"""The toy DeFeat configs train and test through the shared tools, with
the teacher loaded from a checkpoint by the Runner."""
import glob
import json
import math
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
FEW = [
    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
    'train_dataloader.batch_size=2', 'train_dataloader.dataset.indices=6',
    'val_dataloader.dataset.indices=2', 'val_dataloader.batch_size=2',
    'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'
]


@pytest.mark.parametrize('kind', ['retinanet', 'faster_rcnn'])
def test_toy_distillation_trains_and_tests(kind, build_model, toy_data, tool,
                                           tmp_path):
    teacher = build_model(kind, 'teacher')
    teacher_ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}},
               teacher_ckpt)
    config = osp.join(ROOT, 'configs', 'defeat', f'toy_{kind}_defeat.py')
    work = tmp_path / 'work'
    res = tool([osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
                str(work), '--cfg-options',
                f'model.teacher_ckpt={teacher_ckpt}'] + FEW,
               cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f'loaded teacher weights from {teacher_ckpt}' in res.stdout + \
        res.stderr
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    train_rows = [r for r in rows if 'loss' in r]
    assert len(train_rows) == 3  # 6 images, batch 2, logged every step
    keys = ['loss_defeat_neck_fg', 'loss_defeat_neck_bg']
    if kind == 'faster_rcnn':
        keys += ['loss_defeat_roi_fg', 'loss_defeat_roi_bg']
    for row in train_rows:
        for key in keys + ['loss']:
            assert math.isfinite(row[key]), (key, row)
    assert all(r['loss_defeat_neck_bg'] > 0 for r in train_rows)

    if kind == 'faster_rcnn':
        return  # testing a distiller is the same path for both kinds
    ckpt = open(work / 'last_checkpoint').read().strip()
    # keep the barely trained student's boxes, so that there is a metric
    thr = 'model.student.test_cfg.score_thr=0.0'
    res = tool([osp.join(ROOT, 'tools', 'test.py'), config, ckpt,
                '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                'test_dataloader.dataset.indices=2', thr],
               cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'coco/bbox_mAP' in res.stdout + res.stderr

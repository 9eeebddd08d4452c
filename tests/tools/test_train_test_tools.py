# Copyright (c) EVLab contributors.
"""tools/train.py then tools/test.py (with the config train.py dumped), for
each host library, on the toy data, from a folder other than the
repository."""
import glob
import os.path as osp
import pickle

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# (config, few-iteration overrides, metric printed by the test run)
HOSTS = {
    'mmdet': ('configs/baselines/retinanet_r18_toy_det.py', [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.dataset.indices=8',
        'val_dataloader.dataset.indices=4', 'val_dataloader.batch_size=2',
        'default_hooks.checkpoint.interval=1'
    ], 'coco/bbox_mAP'),
    'mmpretrain': ('configs/baselines/resnet18_toy_cls.py', [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.dataset.indices=32',
        'val_dataloader.dataset.indices=16',
        'default_hooks.checkpoint.interval=1'
    ], 'accuracy/top1'),
    'mmseg': ('configs/baselines/fcn_r18_toy_seg.py', [
        'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
        'val_dataloader.dataset.indices=3',
        'default_hooks.checkpoint.interval=3'
    ], 'mIoU'),
}


@pytest.mark.parametrize('host', sorted(HOSTS))
def test_train_then_test(host, toy_data, tool, tmp_path):
    config, overrides, metric = HOSTS[host]
    work = tmp_path / 'work'
    res = tool([osp.join(ROOT, 'tools', 'train.py'), osp.join(ROOT, config),
                '--work-dir', str(work), '--cfg-options'] + overrides,
               cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ckpt = open(work / 'last_checkpoint').read().strip()
    assert osp.isfile(ckpt)
    # no temporary files are left behind by the atomic writer
    assert not glob.glob(str(work / '.*.tmp'))
    out = tmp_path / 'preds.pkl'
    test_overrides = [o.replace('val_dataloader', 'test_dataloader')
                      for o in overrides if o.startswith('val_dataloader')]
    if host == 'mmdet':  # keep the barely trained detector's boxes
        test_overrides.append('model.test_cfg.score_thr=0.0')
    show = tmp_path / 'show'
    # tested through the config train.py dumped into the work_dir, as
    # OpenMMLab users do (it names EVLab's exact-resume hook and loop)
    dumped = work / osp.basename(config)
    assert 'ExactResume' in dumped.read_text()
    res = tool([osp.join(ROOT, 'tools', 'test.py'), str(dumped), ckpt,
                '--work-dir', str(tmp_path / 'test'), '--out', str(out),
                '--show-dir', str(show), '--cfg-options'] + test_overrides,
               cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert metric in res.stdout + res.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    n_test = int(test_overrides[0].split('=')[1])  # the indices=N option
    assert len(preds) == n_test
    # --show-dir: one picture with the predictions drawn per test image
    drawn = [p for p in glob.glob(str(show / '**' / '*'), recursive=True)
             if p.endswith(('.png', '.jpg'))]
    assert len(drawn) == n_test, drawn

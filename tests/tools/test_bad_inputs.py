# Copyright (c) EVLab contributors.
"""Bad inputs give one clear error line (exit code 2), not a traceback."""
import os.path as osp
import shutil

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
CLS = osp.join(ROOT, 'configs/baselines/resnet18_toy_cls.py')
FAST = ['train_cfg.max_epochs=1', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False']


def _assert_clear_error(res, *needles):
    err = res.stderr
    assert res.returncode == 2, res.stdout[-2000:] + err[-2000:]
    assert 'Traceback' not in err, err[-3000:]
    assert err.count('\n') <= 4, err
    assert err.startswith('error: ') or '\nerror: ' in err, err
    for needle in needles:
        assert needle in err, err


def test_missing_config(tool, tmp_path):
    res = tool([TRAIN, 'configs/no/such_config.py'], cwd=str(tmp_path))
    _assert_clear_error(res, 'configs/no/such_config.py', 'does not exist')


def test_unknown_type(tool, tmp_path, toy_data):
    cfg = tmp_path / 'bad_type.py'
    cfg.write_text(f"_base_ = ['{CLS}']\n"
                   "model = dict(backbone=dict(type='NoSuchNet'))\n")
    res = tool([TRAIN, str(cfg), '--work-dir', str(tmp_path / 'w')],
               cwd=str(tmp_path))
    _assert_clear_error(res, 'NoSuchNet', 'unknown `type`', 'custom_imports')


def test_missing_dataset_folder(tool, tmp_path):
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options',
                'train_dataloader.dataset.data_root=/no/such/toy_cls'],
               cwd=str(tmp_path))
    _assert_clear_error(res, '/no/such/toy_cls',
                        'train_dataloader.dataset.data_root',
                        'tools/misc/make_toy_data.py')


@pytest.mark.parametrize('workers', [0, 1])
def test_corrupt_image(tool, tmp_path, toy_data, workers):
    src = osp.join(toy_data, 'toy_cls')
    dst = tmp_path / 'toy_cls'
    shutil.copytree(src, dst)
    lines = (dst / 'meta' / 'train.txt').read_text().split('\n')[:8]
    (dst / 'meta' / 'train.txt').write_text('\n'.join(lines) + '\n')
    bad = dst / 'train' / lines[3].split()[0]
    bad.write_bytes(b'not a jpeg at all')
    res = tool([TRAIN, CLS, '--work-dir', str(tmp_path / 'w'),
                '--cfg-options', f'train_dataloader.dataset.data_root={dst}',
                'train_dataloader.batch_size=4', 'train_cfg.val_interval=5'] +
               FAST + [f'train_dataloader.num_workers={workers}'],
               cwd=str(tmp_path))
    _assert_clear_error(res, str(bad), 'could not be read')


def test_truncated_checkpoint(tool, tmp_path, toy_data):
    path = tmp_path / 'cut.pth'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:500])
    res = tool([TEST, CLS, str(path), '--work-dir', str(tmp_path / 'w')],
               cwd=str(tmp_path))
    _assert_clear_error(res, str(path), 'truncated or corrupt')


def test_resume_from_missing_checkpoint(tool, tmp_path):
    res = tool([TRAIN, CLS, '--resume', str(tmp_path / 'nope.pth')],
               cwd=str(tmp_path))
    _assert_clear_error(res, 'nope.pth', 'does not exist')

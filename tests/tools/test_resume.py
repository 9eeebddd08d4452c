# Copyright (c) EVLab contributors.
"""Kill a run between checkpoints, resume it, and get the weights of an
uninterrupted run: the safe loader reads real EVLab checkpoints."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import torch

from projects.common.checkpoint import safe_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/baselines/resnet18_toy_cls.py')
# 3 epochs of 4 iterations; a checkpoint after every epoch
OPTIONS = [
    'train_cfg.max_epochs=3', 'train_cfg.val_interval=10',
    'train_dataloader.dataset.indices=64', 'train_dataloader.batch_size=16',
    'train_dataloader.num_workers=1',
    'train_dataloader.persistent_workers=False',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=-1',
]


def _train(work_dir, extra=()):
    return [sys.executable, osp.join(ROOT, 'tools', 'train.py'), CONFIG,
            '--work-dir', str(work_dir), *extra, '--cfg-options', *OPTIONS]


def _weights(path):
    return safe_load(path, map_location='cpu')['state_dict']


def test_kill_and_resume_matches_uninterrupted_run(toy_data, tmp_path):
    env = dict(os.environ, EVLAB_DEBUG='1')
    # the reference: an uninterrupted run
    ref = tmp_path / 'ref'
    res = subprocess.run(_train(ref), env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]

    # the interrupted run: SIGKILL once epoch 1 is saved, mid epoch 2
    run = tmp_path / 'run'
    proc = subprocess.Popen(_train(run), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / 'epoch_1.pth').exists():
        assert proc.poll() is None, 'training ended before epoch 1'
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / 'epoch_3.pth').exists()
    saved = sorted(p.name for p in run.glob('epoch_*.pth'))

    res = subprocess.run(_train(run, ['--resume']), env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    # it continued from the newest checkpoint the killed run had saved,
    # even if the kill came before `last_checkpoint` was updated
    assert f'resumed epoch: {len(saved)}, iter: {4 * len(saved)}' in log, \
        log[-3000:]
    assert 'Epoch(train) [1]' not in log

    final, expected = _weights(run / 'epoch_3.pth'), _weights(
        ref / 'epoch_3.pth')
    assert final.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(final[key], expected[key], rtol=0,
                                   atol=0, msg=key)
    # and the run did change the weights
    first = _weights(ref / 'epoch_1.pth')
    assert any(not torch.equal(first[k], expected[k]) for k in expected
               if expected[k].is_floating_point())

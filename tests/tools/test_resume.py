# Copyright (c) EVLab contributors.
"""Kill a run between checkpoints, resume it, and get the weights of an
uninterrupted run: the safe loader reads real EVLab checkpoints.

The reference runs come from one tool server (tests/conftest.py), the
killed and resumed runs from another (``server='resumed'``): the runs
that are compared are separate processes with their own hash seeds, as
two ``python tools/train.py`` would be."""
import os
import os.path as osp
import signal
import time

import torch

from projects.common.checkpoint import safe_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/baselines/resnet18_toy_cls.py')
# the network at a quarter of ResNet-18's width, small batches: what is
# checked (the checkpoints, the random states, the loop's position) does
# not depend on the size of the model or of the batch
SMALL = [
    'model.backbone.stem_channels=16', 'model.backbone.base_channels=16',
    'model.head.in_channels=128', 'train_dataloader.dataset.indices=16',
    'train_dataloader.batch_size=4',
]
# 3 epochs of 4 iterations; a checkpoint after every epoch
OPTIONS = SMALL + [
    'train_cfg.max_epochs=3', 'train_cfg.val_interval=10',
    # (the loop validates after the last epoch; on 8 images here)
    'val_dataloader.dataset.indices=8', 'val_dataloader.num_workers=0',
    'train_dataloader.num_workers=1',
    'train_dataloader.persistent_workers=False',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=-1',
]


DEBUG = {'EVLAB_DEBUG': '1'}


def _train(work_dir, extra=()):
    return [osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir',
            str(work_dir), *extra, '--cfg-options', *OPTIONS]


def _weights(path):
    return safe_load(path, map_location='cpu')['state_dict']


def test_kill_and_resume_matches_uninterrupted_run(toy_data, tmp_path, tool,
                                                   start_run):
    # the reference: an uninterrupted run
    ref = tmp_path / 'ref'
    res = tool(_train(ref), env=DEBUG)
    assert res.returncode == 0, res.stderr[-3000:]

    # the interrupted run: SIGKILL once epoch 1 is saved, mid epoch 2
    run = tmp_path / 'run'
    proc = start_run(_train(run), env=DEBUG, server='resumed')
    deadline = time.time() + 300
    while not (run / 'epoch_1.pth').exists():
        assert proc.poll() is None, 'training ended before epoch 1'
        assert time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / 'epoch_3.pth').exists()
    saved = sorted(p.name for p in run.glob('epoch_*.pth'))

    res = tool(_train(run, ['--resume']), env=DEBUG, server='resumed')
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


# 2 epochs of 4 iterations, a checkpoint after every iteration, a
# validation after every epoch; num_workers=0 puts the augmentation draws
# (RandomResizedCrop, RandomFlip) on the main process's random state
ITER_OPTIONS = SMALL + [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.dataset.indices=8', 'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False',
    'default_hooks.checkpoint.by_epoch=False',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=-1',
    'default_hooks.logger.interval=1',
]


def _train_iter_ckpts(work_dir, extra=()):
    return [osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir',
            str(work_dir), *extra, '--cfg-options', *ITER_OPTIONS]


def _trained_iters(log: str):
    """The (epoch, iteration) of every training log line."""
    import re
    return re.findall(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/4\]', log)


def test_resume_inside_and_at_end_of_epoch_is_exact(toy_data, tmp_path,
                                                    tool):
    """A kill leaves the newest checkpoint as the run's last word: resuming
    from each iteration checkpoint of a run (inside an epoch, at an epoch's
    last iteration, at the end) trains exactly the missing iterations and
    ends with the uninterrupted run's weights, bit for bit."""
    import shutil
    ref = tmp_path / 'ref'
    res = tool(_train_iter_ckpts(ref), env=DEBUG)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(_trained_iters(res.stdout + res.stderr)) == 8
    expected = _weights(ref / 'iter_8.pth')

    # iter_3: inside epoch 1; iter_4: epoch 1's last iteration (mmengine
    # records epoch 0 there and trained epoch 1 again)
    for ckpt, left in (('iter_3.pth', 5), ('iter_4.pth', 4)):
        run = tmp_path / ckpt[:-4]
        run.mkdir()
        shutil.copy(ref / ckpt, run / ckpt)
        res = tool(_train_iter_ckpts(run, ['--resume', str(run / ckpt)]),
                   env=DEBUG, server='resumed')
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-3000:]
        done = int(ckpt[5:-4])
        want = [(str(1 + i // 4), str(1 + i % 4)) for i in range(done, 8)]
        assert _trained_iters(log) == want, (ckpt, log[-3000:])
        assert len(want) == left
        final = _weights(run / 'iter_8.pth')
        for key in expected:
            torch.testing.assert_close(final[key], expected[key], rtol=0,
                                       atol=0, msg=f'{ckpt}: {key}')
        # the validation after epoch 1 is not lost by a kill before it
        if done == 4:
            assert 'Epoch(val) [1]' in log, log[-3000:]

    # resuming the finished run does nothing: no training, no new files
    before = {p.name: p.stat().st_mtime_ns for p in ref.glob('*.pth')}
    res = tool(_train_iter_ckpts(ref, ['--resume']), env=DEBUG,
               server='resumed')
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert _trained_iters(log) == [], log[-3000:]
    assert 'nothing left to do' in log, log[-3000:]
    assert {p.name: p.stat().st_mtime_ns
            for p in ref.glob('*.pth')} == before

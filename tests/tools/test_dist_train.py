# Copyright (c) EVLab contributors.
"""tools/dist_train.sh with 2 CPU processes (gloo, DDP without device
ids) trains and writes one set of checkpoints and logs."""
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_two_process_cpu_training(toy_data, tool, tmp_path, free_port):
    work = tmp_path / 'work'
    res = tool([
        osp.join(ROOT, 'tools', 'dist_train.sh'),
        osp.join(ROOT, 'configs/baselines/resnet18_toy_cls.py'), '2',
        '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=2',
        'train_cfg.val_interval=2', 'train_dataloader.dataset.indices=64',
        'train_dataloader.batch_size=8', 'val_dataloader.dataset.indices=32',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1'
    ], cwd=str(tmp_path), env=dict(PORT=str(free_port),
                                    OMP_NUM_THREADS='1'))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    # both ranks joined one process group (mmengine calls it GPU number)
    assert 'Distributed training: True' in out, out[-2000:]
    assert re.search(r'GPU number: 2\b', out), out[-2000:]
    # one run folder, one log, one set of checkpoints (rank 0 writes)
    runs = [p for p in work.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    logs = list(runs[0].glob('*.log'))
    assert len(logs) == 1, logs
    assert sorted(p.name for p in work.glob('*.pth')) == [
        'epoch_1.pth', 'epoch_2.pth']
    # 64 images / (2 ranks x 8) = 4 iterations per epoch on each rank
    assert 'Epoch(train) [2][4/4]' in logs[0].read_text()
    assert 'accuracy/top1' in logs[0].read_text()

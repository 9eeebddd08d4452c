# Copyright (c) EVLab contributors.
"""tools/slurm_train.sh through a stand-in `srun` (tests/tools/slurm_stub:
the tasks start on this machine with the SLURM_* variables of a real job):
2 CPU tasks form one process group, train and write one set of outputs.
(tools/slurm_test.sh is the same srun line around tools/test.py.)"""
import os
import os.path as osp
import re

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STUB = osp.join(ROOT, 'tests', 'tools', 'slurm_stub')
CONFIG = osp.join(ROOT, 'configs/baselines/resnet18_toy_cls.py')


def _slurm_env(tmp_path, port: int) -> dict:
    return dict(PATH=STUB + os.pathsep + os.environ['PATH'], GPUS='2',
                GPUS_PER_NODE='2', CPUS_PER_TASK='1', OMP_NUM_THREADS='1',
                MASTER_PORT=str(port),
                SRUN_STUB_LOG=str(tmp_path / 'srun.log'))


def test_slurm_train_with_two_tasks(toy_data, tool, tmp_path, free_port):
    work = tmp_path / 'work'
    res = tool([
        osp.join(ROOT, 'tools', 'slurm_train.sh'), 'toypart', 'toyjob',
        CONFIG, str(work), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'train_dataloader.dataset.indices=64',
        'train_dataloader.batch_size=8', 'val_dataloader.dataset.indices=32',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False'
    ], cwd=str(tmp_path), env=_slurm_env(tmp_path, free_port))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    # the launcher asked slurm for the partition, job and tasks
    call = (tmp_path / 'srun.log').read_text()
    for arg in ('-p toypart', '--job-name=toyjob', '--ntasks=2',
                '--ntasks-per-node=2', '--cpus-per-task=1',
                '--launcher=slurm'):
        assert arg in call, call
    # both tasks joined one process group (mmengine calls it GPU number)
    assert 'Distributed training: True' in out, out[-2000:]
    assert re.search(r'GPU number: 2\b', out), out[-2000:]
    runs = [p for p in work.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    log = list(runs[0].glob('*.log'))
    assert len(log) == 1, log
    # 64 images / (2 tasks x 8) = 4 iterations per epoch on each task
    assert 'Epoch(train) [1][4/4]' in log[0].read_text()
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']


def test_failing_task_fails_the_job(tool, tmp_path, free_port):
    """A task that exits with an error fails the whole job (the error line
    is shown), as --kill-on-bad-exit=1 makes slurm do."""
    res = tool([
        osp.join(ROOT, 'tools', 'slurm_train.sh'), 'toypart', 'toyjob',
        str(tmp_path / 'no_such_config.py'), str(tmp_path / 'work')
    ], cwd=str(tmp_path), env=_slurm_env(tmp_path, free_port))
    assert res.returncode != 0
    assert 'no_such_config.py' in res.stderr, res.stderr[-2000:]
    assert 'Traceback' not in res.stderr, res.stderr[-2000:]

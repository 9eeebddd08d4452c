# Copyright (c) EVLab contributors.
"""Safe checkpoint loading and atomic checkpoint writes."""
import argparse
import os

import numpy as np
import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, save_checkpoint

from projects.common import checkpoint as ckpt


def _mmengine_like_checkpoint():
    buf = HistoryBuffer()
    buf.update(0.5)
    return {
        'meta': {'epoch': 1, 'seed': 0, 'dataset_meta': {'classes': ('a', )},
                 'np_scalar': np.float64(1.5), 'np_array': np.arange(3)},
        'state_dict': {'w': torch.ones(2)},
        'message_hub': {'log_scalars': {'train/loss': buf}},
    }


def test_safe_load_reads_mmengine_objects(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    loaded = ckpt.safe_load(path)
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['meta']['np_scalar'] == 1.5
    np.testing.assert_array_equal(loaded['meta']['np_array'], np.arange(3))
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.current() == 0.5


def test_unknown_type_is_refused_with_its_name(tmp_path, monkeypatch):
    path = tmp_path / 'foreign.pth'
    torch.save({'meta': argparse.Namespace(a=1)}, path)
    monkeypatch.delenv(ckpt.TRUST_ENV, raising=False)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.safe_load(path)
    msg = str(err.value)
    assert 'argparse.Namespace' in msg and str(path) in msg
    assert ckpt.TRUST_ENV in msg
    # the user trusts the file: allow exactly that type
    monkeypatch.setenv(ckpt.TRUST_ENV, 'argparse.Namespace')
    assert ckpt.safe_load(path)['meta'].a == 1


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match='truncated or corrupt'):
        ckpt.safe_load(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match='does not exist'):
        ckpt.safe_load(tmp_path / 'nope.pth')


def test_install_routes_mmengine_loading_through_safe_load(tmp_path):
    ckpt.install()
    path = tmp_path / 'x.pth'
    torch.save({'meta': argparse.Namespace()}, path)
    with pytest.raises(ckpt.CheckpointError):
        CheckpointLoader.load_checkpoint(str(path))


def test_atomic_write_keeps_previous_file_on_crash(tmp_path, monkeypatch):
    ckpt.install()
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=ckpt.ATOMIC_BACKEND))
    assert isinstance(backend, ckpt.AtomicLocalBackend)
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'state_dict': {'w': torch.zeros(3)}}, str(path),
                    backend_args=dict(backend=ckpt.ATOMIC_BACKEND))
    good = path.read_bytes()

    real_fsync = os.fsync

    def crash(fd):  # the process dies after half the bytes are written
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.ones(10**5)}},
                        str(path),
                        backend_args=dict(backend=ckpt.ATOMIC_BACKEND))
    monkeypatch.setattr(os, 'fsync', real_fsync)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ['epoch_1.pth']
    assert torch.equal(ckpt.safe_load(path)['state_dict']['w'],
                       torch.zeros(3))


def test_use_atomic_checkpoints_respects_remote_backends():
    from mmengine.config import Config
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(
        type='CheckpointHook'))))
    ckpt.use_atomic_checkpoints(cfg)
    assert cfg.default_hooks.checkpoint.backend_args == dict(
        backend=ckpt.ATOMIC_BACKEND)
    remote = Config(dict(default_hooks=dict(checkpoint=dict(
        type='CheckpointHook', out_dir='s3://bucket/run'))))
    ckpt.use_atomic_checkpoints(remote)
    assert remote.default_hooks.checkpoint.get('backend_args') is None


def test_getattr_is_served_only_for_history_buffer_methods(tmp_path):
    import pickle
    # protocol 2 pickles HistoryBuffer.mean as getattr(HistoryBuffer, 'mean')
    path = tmp_path / 'hb.pth'
    torch.save({'m': HistoryBuffer.mean}, path)
    assert ckpt.safe_load(path)['m'] is HistoryBuffer.mean

    class Sneaky:  # a first step towards __globals__ and arbitrary code
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    evil = tmp_path / 'evil.pth'
    with open(evil, 'wb') as f:
        pickle.dump({'x': Sneaky()}, f, protocol=2)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.safe_load(evil)


def test_resume_picks_newest_checkpoint_over_stale_pointer(tmp_path):
    assert ckpt.find_resume_checkpoint(str(tmp_path)) is None
    for i, name in enumerate(['epoch_1.pth', 'best_acc.pth', 'epoch_2.pth']):
        (tmp_path / name).write_bytes(b'x')
        os.utime(tmp_path / name, (100 + i, 100 + i))
    # killed after epoch_2.pth was renamed into place, before the pointer
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert ckpt.find_resume_checkpoint(str(tmp_path)) == str(
        tmp_path / 'epoch_2.pth')

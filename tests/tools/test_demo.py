# Copyright (c) EVLab contributors.
"""tools/misc/demo.py: the result table (mean and spread over seeds) and
the reuse of finished steps; the training itself is `make demo`."""
import importlib.util
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location(
        'evlab_demo', osp.join(ROOT, 'tools', 'misc', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed, map_, minutes):
    return dict(seed=seed, train_min=minutes, checkpoint='x',
                metrics={m: map_ for m in
                         ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_s',
                          'bbox_mAP_m', 'bbox_mAP_l')})


def test_fmt_mean_and_sample_spread(demo):
    assert demo.fmt([0.1]) == '0.100'
    # mean 0.2, sample standard deviation 0.1
    assert demo.fmt([0.1, 0.2, 0.3]) == '0.200 ± 0.100'
    assert demo.fmt([float('nan')]) == 'n/a'


def test_table_rows(demo):
    text = demo.table({'teacher': [_run(0, 0.3, float('nan'))],
                       'student': [_run(0, 0.1, 2.0), _run(1, 0.3, 4.0)],
                       'defeat': [_run(0, 0.2, 3.0), _run(1, 0.4, 5.0)]})
    lines = text.splitlines()
    assert len(lines) == 5
    assert '| 0.300 | 0.300 |' in lines[2] and '| n/a | 0 |' in lines[2]
    assert '0.200 ± 0.141' in lines[3] and '3.0 ± 1.4' in lines[3]
    assert lines[3].endswith('| 0,1 |')
    assert '0.300 ± 0.141' in lines[4]


def test_finished_steps_are_reused(demo, tmp_path, monkeypatch):
    ckpt = tmp_path / 'epoch_8.pth'
    ckpt.write_bytes(b'')
    done = _run(0, 0.25, 1.5)
    done['checkpoint'] = str(ckpt)
    (tmp_path / 'demo_result.json').write_text(json.dumps(done))

    def no_run(cmd):
        raise AssertionError(f'should not run {cmd}')

    monkeypatch.setattr(demo, 'run', no_run)
    got = demo.train_and_test('student', str(tmp_path), 0, [], fresh=False)
    assert got['metrics']['bbox_mAP'] == 0.25
    # a result whose checkpoint is gone is redone
    ckpt.unlink()
    with pytest.raises(AssertionError, match='should not run'):
        demo.train_and_test('student', str(tmp_path), 0, [], fresh=False)

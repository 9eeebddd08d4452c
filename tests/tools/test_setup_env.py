# Copyright (c) EVLab contributors.
"""tools/misc/setup_env.sh names a failed step, stops at the first error
inside it, and continues from that step on the next run."""
import os
import os.path as osp
import subprocess

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'misc', 'setup_env.sh')


def test_failed_step_is_named_and_resumed_from(tmp_path):
    venv = tmp_path / 'venv'
    state = venv / '.evlab-setup'
    state.mkdir(parents=True)
    for done in ('venv', 'torch'):  # pretend the first steps ran
        (state / f'{done}.done').touch()
    env = dict(os.environ, VENV=str(venv), EVLAB_MMCV_OPS='bogus',
               EVLAB_CACHE=str(tmp_path / 'cache'))
    res = subprocess.run(['bash', SCRIPT], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1
    assert 'done before, skipped' in res.stdout
    assert "step 'mmcv'" in res.stderr
    assert "not 'bogus'" in res.stderr
    assert "continues from step 'mmcv'" in res.stderr
    # the step stopped at its first error: nothing was downloaded or built
    log = (state / 'logs' / 'mmcv.log').read_text()
    assert log.strip().splitlines() == [
        "EVLAB_MMCV_OPS must be auto, cpu or cuda, not 'bogus'"]
    assert not (state / 'mmcv.done').exists()
    assert not (tmp_path / 'cache').exists()

# Copyright (c) EVLab contributors.
"""The evidence runners' helpers (projects/common/seeds.py): a finished
run is reused, not rerun; a failed run names its log; the mean and
spread format; a seed listed twice is refused."""
import json

import pytest

from projects.common.seeds import check_unique_seeds, mean_std, run_train, wall


def test_finished_run_is_reused(tmp_path, capsys):
    work = tmp_path / 'run'
    work.mkdir()
    (work / 'finished.json').write_text('{}')
    # a config that does not exist: any attempt to run it would fail
    assert run_train(str(tmp_path / 'missing.py'), str(work)) == 0.0
    assert 'reused' in capsys.readouterr().out


def test_failed_run_names_its_log(tmp_path):
    work = tmp_path / 'run'
    with pytest.raises(SystemExit, match='run.log'):
        run_train(str(tmp_path / 'missing.py'), str(work), tag='t')
    assert (tmp_path / 'run.log').is_file()
    assert not (work / 'wall_time.json').exists()


def test_wall_reads_what_a_run_wrote(tmp_path):
    (tmp_path / 'wall_time.json').write_text(json.dumps(dict(seconds=12.5)))
    assert wall(str(tmp_path)) == 12.5


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == '2.0 ± 1.0'
    assert mean_std([0.25], 3) == '0.250 ± 0.000'


def test_a_seed_listed_twice_is_refused():
    check_unique_seeds([0, 1, 2], '--seeds')
    check_unique_seeds(None, '--retrain-seeds')  # the option left out
    with pytest.raises(ValueError, match='--seeds lists a seed twice'):
        check_unique_seeds([0, 1, 0], '--seeds')

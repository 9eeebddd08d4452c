# Copyright (c) EVLab contributors.
"""The toy evidence runner (tools/misc/hitdet_toy_seeds.py): its table
states the gap to the random pool's mean in standard errors of that mean,
whether a searched net beats every random one, each net's retrains and
the pooled retrain noise; every net retrains once per retrain seed, in
its own folder, after what it needs; its plot is written.
The runs themselves are the toy pipeline's (test_toy_pipeline.py)."""
import importlib.util
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOOL = osp.join(ROOT, 'tools', 'misc', 'hitdet_toy_seeds.py')


def _tool():
    spec = importlib.util.spec_from_file_location('hitdet_toy_seeds', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _results():
    def pool(maps, macs):
        return [dict(name=f'random_{i}', map=m, maps=[m - 0.01, m + 0.01],
                     macs=macs * (1 - 0.01 * i), params=2e6 + i)
                for i, m in enumerate(maps)]
    searched = {0: dict(map=0.20, maps=[0.18, 0.22], macs=1.85e9,
                        params=2.1e6, target=1.85e9,
                        random=pool((0.10, 0.12, 0.14), 1.85e9),
                        seconds=dict(screen=10.0, search=20.0)),
                1: dict(map=0.13, maps=[0.13, 0.13], macs=2.0e9,
                        params=2.2e6, target=2.0e9,
                        random=pool((0.12, 0.14, 0.16), 2.0e9),
                        seconds=dict(screen=11.0, search=21.0))}
    return dict(pool_seed=0, retrain_seeds=[0, 1], searched=searched)


def test_report_gap_in_standard_errors(capsys):
    _tool().report(_results())
    out = capsys.readouterr().out
    assert 'retrained with seed(s) 0, 1' in out
    # pools 0.12 and 0.14 +- 0.02, SE 0.02 / sqrt(3) = 0.0115
    assert '| 0 | 0.200 | 0.120 ± 0.020 | +0.080 (+6.9) | yes | 1.850 G' \
        in out
    assert '| 1 | 0.130 | 0.140 ± 0.020 | -0.010 (-0.9) | no | 2.000 G' \
        in out
    assert 'searched 0.200 (0.180 / 0.220)' in out
    assert 'random_2: 0.140 (0.130 / 0.150)  1.813 G (-2.0%)' in out
    assert 'searched over seeds: 0.165 ± 0.049' in out
    # per-net variances: 0.0008 (searched 0), 0 (searched 1), 0.0002 x 6
    assert 'pooled over 8 nets: 0.016' in out


def test_mean_map_over_retrain_seeds(tmp_path, monkeypatch):
    tool = _tool()
    scores = {'a': 0.3, 'b': 0.4}
    monkeypatch.setattr(tool, 'last_map', lambda w: scores[osp.basename(w)])
    got = tool.mean_map([str(tmp_path / 'a'), str(tmp_path / 'b')])
    assert got['maps'] == [0.3, 0.4]
    assert abs(got['map'] - 0.35) < 1e-12
    assert tool.retrain_dir(2, 'root', 1) == osp.join('root', 'seed2',
                                                      'retrain_rs1')
    assert tool.retrain_dir(2, 'root', 0, 'random_3') == osp.join(
        'root', 'seed2', 'random', 'random_3_rs0')


def test_plot_is_written(tmp_path):
    path = tmp_path / 'plot.png'
    _tool().plot(_results(), str(path))
    assert path.stat().st_size > 10_000


def test_schedule_runs_a_task_after_its_dependencies():
    import threading
    import time
    tool = _tool()
    order, lock = [], threading.Lock()

    def note(name, wait=0.0):
        time.sleep(wait)
        with lock:
            order.append(name)

    tasks = [('a', note, ('a', 0.2), []), ('b', note, ('b', ), []),
             ('c', note, ('c', ), ['a']), ('d', note, ('d', ), ['c', 'b'])]
    tool.schedule(tasks, jobs=2)
    # b runs beside a; c waits for a, d for c
    assert order == ['b', 'a', 'c', 'd']


def test_schedule_stops_at_a_failure():
    import pytest
    tool = _tool()
    ran = []

    def fail():
        raise SystemExit('x failed; see x.log')

    tasks = [('x', fail, (), []), ('y', ran.append, ('y', ), ['x'])]
    with pytest.raises(SystemExit, match='x.log'):
        tool.schedule(tasks, jobs=2)
    assert ran == []


def test_main_retrains_every_net_once_per_retrain_seed(monkeypatch,
                                                       tmp_path):
    import pytest
    tool = _tool()
    got = []

    def capture(tasks, jobs):
        got.extend(tasks)
        raise SystemExit('captured')

    monkeypatch.setattr(tool, 'schedule', capture)
    with pytest.raises(SystemExit, match='captured'):
        tool.main(['--seeds', '3', '--random', '2', '--retrain-seeds', '0',
                   '1', '--work-root', str(tmp_path)])
    by_name = {t[0]: t for t in got}
    assert sorted(by_name) == sorted(
        ['search3', 'pool3'] +
        [f'retrain3_rs{r}' for r in (0, 1)] +
        [f'random3_{i}_rs{r}' for i in (0, 1) for r in (0, 1)])
    # a searched net's retrain waits for its search, a random one's for
    # the pool; each in its own folder with its own seed
    name, fn, args, deps = by_name['retrain3_rs1']
    assert deps == ['search3']
    assert args[0].endswith(osp.join('seed3', 'search', 'retrain_config.py'))
    assert args[1:3] == (osp.join(str(tmp_path), 'seed3', 'retrain_rs1'), 1)
    name, fn, args, deps = by_name['random3_1_rs0']
    assert deps == ['pool3']
    assert args[0] == osp.join(str(tmp_path), 'seed3', 'random',
                               'random_1.py')
    assert args[1:3] == (osp.join(str(tmp_path), 'seed3', 'random',
                                  'random_1_rs0'), 0)
    assert len({t[2][1] for t in got if t[0].startswith(('retrain',
                                                         'random'))}) == 6


def test_main_refuses_a_seed_listed_twice(capsys):
    import pytest
    with pytest.raises(SystemExit):
        _tool().main(['--retrain-seeds', '0', '0'])
    assert '--retrain-seeds lists a seed twice' in capsys.readouterr().err

# Copyright (c) EVLab contributors.
"""The HourNAS toy evidence runner's ``--budget`` (tools/misc/
hournas_toy_seeds.py): it sets B in every config that reads it, through
keys those configs have, and nowhere else."""
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOOL = osp.join(ROOT, 'tools', 'misc', 'hournas_toy_seeds.py')
CFG = osp.join(ROOT, 'configs', 'hournas')


def _tool():
    spec = importlib.util.spec_from_file_location('hournas_toy_seeds', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _get(cfg, key):
    node = cfg
    for part in key.split('.'):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


def test_budget_reaches_every_config_that_reads_it():
    options = _tool().budget_options(2_330_000)
    base = Config.fromfile(osp.join(CFG, '_toy_base.py')).budget
    for name in ('toy_hournas_stage1-search.py',
                 'toy_hournas_stage2-supernet.py',
                 'toy_hournas_stage2-search.py',
                 'toy_hournas_onestage-supernet.py',
                 'toy_hournas_onestage-search.py'):
        cfg = Config.fromfile(osp.join(CFG, name))
        assert options[name], name
        for opt in options[name]:
            key, value = opt.split('=')
            # the key exists and holds the configs' own budget ...
            assert _get(cfg, key) == base, (name, key)
            cfg.merge_from_dict({key: int(value)}, allow_list_keys=True)
            # ... and now the new one
            assert _get(cfg, key) == 2_330_000, (name, key)
    # the stage 1 supernet trains every vital path, whatever B is
    assert 'toy_hournas_stage1-supernet.py' not in options
    assert _tool().budget_options(None) == {}
    with pytest.raises(ValueError, match='--budget'):
        _tool().budget_options(0)


def test_retrain_seeds_one_folder_per_retrain():
    tool = _tool()
    entry, pool = {}, {}
    jobs = [(entry, 'w/seed1/retrain_hournas', 1, None, 'cfg.py'),
            (pool, 'w/seed0/retrain_random0', 0, ['ir_k3_e1'] * 6, None)]
    # by default one retrain per net, with its own seed
    assert tool.retrain_jobs(jobs, None) == jobs
    got = tool.retrain_jobs(jobs, [0, 1])
    # its own seed in its own folder (what the default wrote), the others
    # beside it
    assert [(w, s) for _, w, s, _, _ in got] == [
        ('w/seed1/retrain_hournas_rs0', 0), ('w/seed1/retrain_hournas', 1),
        ('w/seed0/retrain_random0', 0), ('w/seed0/retrain_random0_rs1', 1)]
    assert got[0][0] is entry and got[3][0] is pool and got[3][3] == jobs[1][3]
    with pytest.raises(ValueError, match='twice'):
        tool.retrain_jobs(jobs, [1, 1])
    # labelled, in seed order whatever order they finished in (and with
    # the string keys of a reloaded JSON)
    entry.update(top1=93.0, retrains={'1': 94.0, '0': 92.0})
    assert tool._score(entry) == '93.00 (seed 0: 92.00 / seed 1: 94.00)'
    assert tool._score(dict(top1=91.25)) == '91.2'
    pool = [dict(retrains={0: 90.0, 1: 91.0}), dict(retrains={0: 89.0})]
    assert tool._seeds(pool, 0) == 'seeds 0, 1'
    assert tool._seeds([dict(top1=90.0)], 3) == 'seed 3'


def test_other_retrain_epochs_never_reuse_a_finished_retrain():
    tool = _tool()
    assert tool.retrain_dir('w/seed0/retrain_random0') == \
        'w/seed0/retrain_random0'
    tool.RETRAIN_EPOCHS = 40
    assert tool.retrain_dir('w/seed0/retrain_random0_rs1/') == \
        'w/seed0/retrain_random0_rs1_ep40'


@pytest.mark.parametrize('argv, flag', [
    (['--seeds', '0', '0'], '--seeds'),
    (['--retrain-seeds', '1', '1'], '--retrain-seeds')])
def test_main_refuses_a_seed_listed_twice(argv, flag, capsys, tmp_path):
    # refused before any run starts (the work dir stays empty)
    with pytest.raises(SystemExit):
        _tool().main([*argv, '--work-dir', str(tmp_path / 'w')])
    assert f'{flag} lists a seed twice' in capsys.readouterr().err
    assert not (tmp_path / 'w').exists()

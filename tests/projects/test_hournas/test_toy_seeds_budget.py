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

# Copyright (c) EVLab contributors.
"""tools/misc/hournas_rank_probe.py: which retrained nets it ranks and
where it reads them from (the supernet scoring is the search loop's own,
tested with the toy search)."""
import importlib.util
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOOL = osp.join(ROOT, 'tools', 'misc', 'hournas_rank_probe.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('hournas_rank', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _g(*ops):
    return [f'ir_{op}' for op in ops]


def test_retrained_nets_are_distinct_and_carry_their_top1(tool):
    pool = [dict(genotype=_g('k3_e1', 'k3_e3'), top1=90.0),
            dict(genotype=_g('k5_e6', 'k3_e3'), top1=93.5)]
    results = {
        # one pool shared by the seeds: each net counted once
        '0': dict(random=pool, hournas=dict(genotype=_g('k3_e6', 'k5_e1'),
                                            top1=95.0),
                  one_stage=dict(genotype=_g('k3_e1', 'k3_e3'), top1=1.0)),
        '1': dict(random=pool, hournas=dict(genotype=_g('k5_e3', 'k5_e1'))),
    }
    nets = tool.retrained_nets(results)
    # the not-yet-retrained seed-1 pick is left out; a searched net equal
    # to a pool net keeps the first top-1 seen
    assert nets == [(_g('k3_e1', 'k3_e3'), 90.0), (_g('k5_e6', 'k3_e3'), 93.5),
                    (_g('k3_e6', 'k5_e1'), 95.0)]
    with pytest.raises(SystemExit, match='only 2 retrained nets'):
        tool.retrained_nets({'0': dict(random=pool)})


def test_retrained_dir_reads_the_dumped_config_and_last_validation(
        tool, tmp_path):
    work = tmp_path / 'retrain'
    (work / '20261203_000000' / 'vis_data').mkdir(parents=True)
    genotype = _g('k3_e3', 'k5_e6', 'k3_e1')
    (work / 'toy_hournas_retrain.py').write_text(
        f'model = dict(backbone=dict(type="HourNASNet", genotype={genotype}))'
        '\n')
    rows = [{'accuracy/top1': 80.0, 'step': 5},
            {'accuracy/top1': 91.25, 'step': 20}]
    (work / '20261203_000000' / 'vis_data' / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in rows) + '\n')
    assert tool.retrained_dir(str(work)) == (genotype, 91.25)
    (work / 'other.py').write_text('x = 1\n')
    with pytest.raises(SystemExit, match='expected the one config'):
        tool.retrained_dir(str(work))

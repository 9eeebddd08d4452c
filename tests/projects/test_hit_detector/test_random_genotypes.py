# Copyright (c) EVLab contributors.
"""The random baselines of the toy evidence
(tools/misc/hitdet_random_genotypes.py): every draw costs what the
reference costs within the band, by the searcher's own cost table; the
draws are seeded; the written configs build exactly the drawn ops."""
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOOL = osp.join(ROOT, 'tools', 'misc', 'hitdet_random_genotypes.py')
TOY = osp.join(ROOT, 'configs', 'hit_detector', 'toy_hitdet.py')


def _draw(script, out, *extra):
    res = script(TOOL, ['--template', TOY, '--out', str(out), '--num', '3',
                        *extra])
    assert res.returncode == 0, res.stderr[-3000:]
    with open(out / 'genotypes.json') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def searcher():
    import importlib.util
    spec = importlib.util.spec_from_file_location('hitdet_random', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool, tool.searcher_for(TOY, 128, 100)


def test_draws_cost_the_reference_within_the_band(script, searcher,
                                                  tmp_path):
    tool, sup = searcher
    res = _draw(script, tmp_path / 'a', '--band', '0.02', '--seed', '3')
    rows = {r['name']: r for r in res['rows']}
    # the reference is toy_hitdet.py's genotype, priced op by op here
    from projects.hit_detector.models import HIT_BACKBONE
    from projects.hit_detector.ops import NECK_OPS
    ref = rows['reference']['genotype']
    assert ref['backbone'] == list(HIT_BACKBONE)
    assert ref['neck'] == [NECK_OPS[i] for i in (7, 7, 6, 5, 5, 7, 7, 5)]
    priced = 0.0
    for name, ops in ref.items():
        for i, op in enumerate(ops):
            alias = f'{name}.{i + (name == "backbone")}'
            block = sup.mutator.blocks[alias]
            priced += float(sup.costs[alias][block.choices.index(op)])
    assert res['target'] == pytest.approx(priced, rel=1e-12)
    draws = [rows[f'random_{i}'] for i in range(3)]
    genotypes = [json.dumps(d['genotype']) for d in draws]
    assert len(set(genotypes)) == 3 and json.dumps(ref) not in genotypes
    for d in draws:
        idx = tool.choice_indices(sup, d['genotype'])
        assert tool.cost_of(sup, idx) == pytest.approx(d['macs'])
        assert abs(d['macs'] / priced - 1) <= 0.02

    # seeded: the same seed draws the same, another seed others
    again = _draw(script, tmp_path / 'b', '--band', '0.02', '--seed', '3')
    other = _draw(script, tmp_path / 'c', '--band', '0.02', '--seed', '4')
    assert again['rows'] == res['rows']
    assert other['rows'][1:] != res['rows'][1:]


def test_written_config_builds_the_drawn_ops(script, tmp_path):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    res = _draw(script, tmp_path, '--seed', '1')
    drawn = res['rows'][1]['genotype']
    cfg = Config.fromfile(str(tmp_path / 'random_0.py'))
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    from projects.hit_detector.ops import NECK_OPS, parse_op_name
    assert [parse_op_name(o) for o in model.backbone.genotype] == \
        [parse_op_name(o) for o in drawn['backbone']]
    neck = [NECK_OPS[o] if isinstance(o, int) else o
            for o in model.neck.genotype]
    assert [parse_op_name(o) for o in neck] == \
        [parse_op_name(o) for o in drawn['neck']]
    assert [parse_op_name(o) for o in model.roi_head.bbox_head.block_ops] == \
        [parse_op_name(o) for o in drawn['head']]


SEARCH = osp.join(ROOT, 'configs', 'hit_detector', 'toy_hitdet_search-4e.py')
RECIPE = osp.join(ROOT, 'configs', 'hit_detector', 'toy_hitdet_6e.py')


def test_space_of_a_search_config_and_a_target(script, tmp_path):
    """``--space``: the draws vary only the search config's positions,
    over its ops, and cost ``--target`` within the band."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('hitdet_random', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    sup = tool.searcher_for(RECIPE, 128, 100, SEARCH)
    # the search config's space: 5 backbone layers, 8 cells, 4 RoI blocks
    assert sorted(sup.costs, key=lambda a: (a[0], int(a.split('.')[1]))) \
        == sorted([f'backbone.{i}' for i in (2, 6, 10, 14, 18)] +
                  [f'neck.{i}' for i in range(8)] +
                  [f'head.{i}' for i in range(4)],
                  key=lambda a: (a[0], int(a.split('.')[1])))
    target = 1.9e9
    res = script(TOOL, ['--template', RECIPE, '--space', SEARCH,
                        '--target', str(target), '--num', '3', '--seed',
                        '2', '--out', str(tmp_path)])
    assert res.returncode == 0, res.stderr[-3000:]
    with open(tmp_path / 'genotypes.json') as f:
        drawn = json.load(f)
    assert drawn['target'] == target and len(drawn['rows']) == 3
    from projects.hit_detector.models import HIT_BACKBONE
    ops = {'ir_k3_e3', 'ir_k5_e6', 'sd_k3_d1', 'conv_1x1'}
    for row in drawn['rows']:
        assert abs(row['macs'] / target - 1) <= 0.03
        backbone = row['genotype']['backbone']
        for i, op in enumerate(backbone):
            if i + 1 in (2, 6, 10, 14, 18):
                assert op in ops
            else:  # not searched: the template's op
                assert op == HIT_BACKBONE[i]
        assert set(row['genotype']['neck']) <= ops
        assert set(row['genotype']['head']) <= ops
        idx = tool.choice_indices(sup, row['genotype'])
        assert tool.cost_of(sup, idx) == pytest.approx(row['macs'])


@pytest.mark.parametrize('extra, message', [
    (['--target', '1e6'], 'lies outside the space'),
    (['--target', '1.9e9', '--reference', 'x.json'], 'not both'),
])
def test_bad_target(script, tmp_path, extra, message):
    res = script(TOOL, ['--template', RECIPE, '--space', SEARCH, '--out',
                        str(tmp_path), *extra])
    assert res.returncode != 0 and message in res.stderr, res.stderr[-2000:]


def test_space_must_be_a_search_config(script, tmp_path):
    res = script(TOOL, ['--template', RECIPE, '--space', RECIPE,
                        '--target', '1.9e9', '--out', str(tmp_path)])
    assert res.returncode != 0 and 'not a HitDetSearcher' in res.stderr

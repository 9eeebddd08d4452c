# Copyright (c) EVLab contributors.
"""The model zoo's rule: every project has a metafile, a README and a
docs page on the template; tags and provenance come from
docs/taxonomy.yml; every config a metafile names exists, builds, and has
the parameters (and, for the toy models, the MACs) the metafile states;
the generated pages are up to date. The rule is also tested on a
temporary tree, where each breach must be reported."""
import copy
import json
import os.path as osp
import subprocess
import sys

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'docs'))
try:
    import count_complexity
    import gen_model_zoo as zoo
finally:
    sys.path.pop(0)

MODELS = [(name, model) for name, meta in zoo.load_metafiles(ROOT).items()
          for model in meta['Models']]


def test_every_project_is_in_the_zoo():
    # the packages under projects/ that the rule covers (guards against a
    # listing that silently finds nothing)
    packages = zoo.project_packages(ROOT)
    assert {'defeat', 'ghostnet', 'issa', 'manifold_kd', 'tnt'} <= set(
        packages)
    assert 'common' not in packages
    assert sorted(zoo.load_metafiles(ROOT)) == packages


def test_repository_passes_the_check():
    assert zoo.check(ROOT) == []


def test_cli_check_exits_zero():
    proc = subprocess.run(
        [sys.executable, 'tools/docs/gen_model_zoo.py', '--check'],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope='module')
def cached_upstream_metafiles():
    """mmengine resolves every ``mmdet::...`` base by reading all of the
    upstream package's metafiles again (~0.8 s a config); read each file
    once here. The configs are loaded and built as always."""
    from mmengine.config import utils
    cache = {}

    def load(path, *args, **kwargs):
        if path not in cache:
            cache[path] = original(path, *args, **kwargs)
        return cache[path]

    original = utils.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(utils, 'load', load)
        yield


@pytest.mark.parametrize('name,model', MODELS,
                         ids=[m['Name'] for _, m in MODELS])
def test_config_builds_with_the_stated_complexity(name, model,
                                                  cached_upstream_metafiles):
    from projects.common.complexity import count_params

    md = model['Metadata']
    path = osp.join(ROOT, model['Config'])
    net = count_complexity.build_deployed(path, 'meta')
    assert count_params(net) == md['Parameters'], (
        f'{model["Name"]}: update Parameters in projects/{name}/'
        f'metafile.yml (python tools/docs/count_complexity.py --write)')
    if max(md['Input'][2:]) <= 160:  # the toy models: counting is cheap
        assert count_complexity.count(path, md['Input'], net) == (
            md['Parameters'], md['MACs']), (
                f'{model["Name"]}: update MACs in projects/{name}/'
                f'metafile.yml (python tools/docs/count_complexity.py '
                f'--write)')


def test_attention_cost_figures_are_the_modules_counts():
    sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis_tools'))
    try:
        import attention_cost
    finally:
        sys.path.pop(0)
    with open(osp.join(ROOT, zoo.ATTENTION_COST)) as f:
        data = json.load(f)
    assert osp.isfile(osp.join(ROOT, 'docs', 'figures',
                               'attention_cost.png'))
    sides = data['sides'][:2]  # the small maps: counting is cheap
    fresh = attention_cost.measure(sides, memory=False)
    for old, new in zip(data['modules'], fresh['modules']):
        assert old['key'] == new['key']
        assert [r['macs'] for r in old['rows'][:2]] == \
            [r['macs'] for r in new['rows']]


# ------------------------------------------------- the rule on a tmp tree
TOY_META = {
    'Collections': [{
        'Name': 'MyNet',
        'Metadata': {'Host': 'mmpretrain'},
        'Tags': {'task': 'classification', 'family': 'cnn',
                 'technique': ['compact-design', 'nas'],
                 'attention_cost': 'none'},
        'Paper': {'Title': 'MyNet', 'URL': 'https://example.org',
                  'Venue': 'CVPR 2030'},
        'README': 'projects/my_net/README.md',
        'Docs': 'docs/my_net.md',
        'Status': 'done',
        'Headline': ['my_net_toy'],
    }],
    'Models': [{
        'Name': 'my_net_toy',
        'In Collection': 'MyNet',
        'Config': 'configs/my_net/my_net_toy.py',
        'Metadata': {'Parameters': 1000, 'MACs': 2000,
                     'Input': [1, 3, 64, 64]},
        'Results': [{
            'Task': 'Image Classification', 'Dataset': 'toy_cls',
            'Metrics': {'Top 1 Accuracy': 50.0},
            'Std': {'Top 1 Accuracy': 1.5},
            'Provenance': 'measured-here-toy', 'Seeds': 3
        }, {
            'Task': 'Image Classification', 'Dataset': 'ImageNet-1k',
            'Metrics': {'Top 1 Accuracy': 70.1}, 'Provenance': 'paper',
            'Uncertain': True
        }],
    }],
}

TOY_PAGE = '\n\n'.join([
    '# MyNet', '## Idea', 'One paragraph.', '## Usage', '`train`',
    '## Results', '<!-- model-zoo:results:start -->\n'
    '<!-- model-zoo:results:end -->', '## Readings of uncertain points',
    '- none', '## Citation', '`@misc{}`', ''
])


@pytest.fixture
def tree(tmp_path):
    """A repository with one project, its pages generated."""
    root = tmp_path / 'repo'
    (root / 'docs').mkdir(parents=True)
    tax = yaml.safe_load(open(osp.join(ROOT, zoo.TAXONOMY)))
    tax['planned'] = dict(PLANNED)  # one project of the roadmap to come
    (root / zoo.TAXONOMY).write_text(yaml.safe_dump(tax, sort_keys=False))
    (root / 'README.md').write_text(
        '# R\n\n## Papers\n\n<!-- model-zoo:papers-table:start -->\n'
        '<!-- model-zoo:papers-table:end -->\n\n## Tests\n')
    for rel in ('projects/common/__init__.py',
                'projects/my_net/__init__.py', 'projects/my_net/README.md',
                'configs/my_net/my_net_toy.py'):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text('')
    write_meta(root, TOY_META)
    (root / 'docs' / 'my_net.md').write_text(TOY_PAGE)
    assert zoo.main(['--root', str(root)]) == 0
    return root


PLANNED = dict(future_net=dict(
    title='A Future Net', venue='CVPR 2030', url='https://example.org/x',
    host='mmdet', tags=dict(task='detection', family='cnn',
                            technique='nas', attention_cost='none')))


def write_meta(root, meta):
    with open(root / 'projects' / 'my_net' / 'metafile.yml', 'w') as f:
        yaml.safe_dump(meta, f, sort_keys=False)


def edited(**changes):
    """TOY_META with its first model (or collection) changed."""
    meta = copy.deepcopy(TOY_META)
    for where, fn in changes.items():
        fn(meta['Models'][0] if where == 'model' else
           meta['Collections'][0])
    return meta


def test_tree_passes_and_pages_hold_the_figures(tree):
    assert zoo.check(str(tree)) == []
    zoo_page = (tree / zoo.ZOO_PAGE).read_text()
    assert '50.0 ± 1.5 top-1 (toy_cls, 3 seeds) [measured-here-toy]' in \
        zoo_page
    assert '70.1 top-1 (ImageNet-1k) [paper, unverified]' in zoo_page
    assert 'compact-design, nas' in zoo_page
    readme = (tree / 'README.md').read_text()
    assert '[`my_net`](projects/my_net/README.md)' in readme
    assert readme.endswith('<!-- model-zoo:papers-table:end -->\n\n'
                           '## Tests\n')  # text outside the block kept
    # the planned projects of the taxonomy are listed as planned
    assert '| `future_net` |' in readme and '| planned |' in readme
    page = (tree / 'docs' / 'my_net.md').read_text()
    assert 'top-1 50.0 ± 1.5 (3 seeds) | measured-here-toy |' in page
    # regenerating changes nothing
    assert zoo.main(['--root', str(tree)]) == 0
    assert zoo.check(str(tree)) == []


@pytest.mark.parametrize('missing', [
    'projects/my_net/metafile.yml', 'projects/my_net/README.md',
    'docs/my_net.md'
])
def test_project_without_its_files_fails(tree, missing):
    (tree / missing).unlink()
    problems = zoo.check(str(tree))
    assert f"project 'my_net' has no {missing}" in problems
    assert zoo.main(['--root', str(tree), '--check']) == 1


def test_new_package_without_anything_fails(tree):
    (tree / 'projects' / 'other').mkdir()
    (tree / 'projects' / 'other' / '__init__.py').write_text('')
    problems = zoo.check(str(tree))
    assert "project 'other' has no projects/other/metafile.yml" in problems
    assert "project 'other' has no docs/other.md" in problems


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize('meta,expected', [
    (edited(coll=lambda c: c['Tags'].update(task='segmentaton')),
     "task 'segmentaton' is not in docs/taxonomy.yml"),
    (edited(coll=lambda c: c['Tags'].update(technique=['nas', 'magic'])),
     "technique 'magic' is not in docs/taxonomy.yml"),
    (edited(coll=lambda c: c['Tags'].pop('family')), "Tags has no 'family'"),
    (edited(model=_set('Tags', {'colour': 'blue'})),
     "tag 'colour' is not in docs/taxonomy.yml"),
    (edited(model=lambda m: m['Results'][1].pop('Provenance')),
     'result #1: no Provenance'),
    (edited(model=lambda m: m['Results'][1].update(Provenance='rumour')),
     "Provenance 'rumour' is not in docs/taxonomy.yml"),
    (edited(model=lambda m: m['Results'][0].pop('Seeds')),
     'a measured-here-toy row states its Seeds'),
    (edited(model=_set('Config', 'configs/my_net/nope.py')),
     'Config configs/my_net/nope.py does not exist'),
    (edited(model=lambda m: m['Metadata'].pop('MACs')),
     'Metadata.MACs must be a positive int'),
    (edited(coll=_set('Headline', ['nope'])), "Headline 'nope' is not"),
])
def test_metafile_breaches_fail(tree, meta, expected):
    write_meta(tree, meta)
    problems = zoo.check(str(tree))
    assert any(expected in p for p in problems), problems
    assert zoo.main(['--root', str(tree), '--check']) == 1


def test_stale_pages_fail(tree):
    meta = edited(model=lambda m: m['Results'][0]['Metrics'].update(
        {'Top 1 Accuracy': 51.0}))
    write_meta(tree, meta)
    problems = zoo.check(str(tree))
    assert 'docs/model_zoo.md is stale: run python ' \
        'tools/docs/gen_model_zoo.py' in problems
    assert 'README.md is stale: run python tools/docs/gen_model_zoo.py' \
        in problems
    assert zoo.main(['--root', str(tree)]) == 0  # regenerate
    assert zoo.check(str(tree)) == []
    assert '51.0 ± 1.5' in (tree / zoo.ZOO_PAGE).read_text()


def test_page_off_the_template_fails(tree):
    page = tree / 'docs' / 'my_net.md'
    text = page.read_text()
    page.write_text(text.replace('## Usage', '## How to'))
    assert any('sections must be' in p for p in zoo.check(str(tree)))
    page.write_text(text.replace('<!-- model-zoo:results:start -->\n', ''))
    assert zoo.check(str(tree))


def test_landed_planned_project_fails(tree):
    tax = yaml.safe_load((tree / zoo.TAXONOMY).read_text())
    tax['planned']['my_net'] = tax['planned']['future_net']
    (tree / zoo.TAXONOMY).write_text(yaml.safe_dump(tax))
    assert any("project 'my_net' has landed" in p
               for p in zoo.check(str(tree)))

# Copyright (c) EVLab contributors.
"""HourNAS's toy pipeline through the tools, as a user runs it: stage 1
supernet -> search -> stage 2 supernet -> search -> retrain the exported
config -> test; a killed search resumes to the uninterrupted result; the
supernet trains on 2 CPU processes with the same path on both."""
import json
import os
import os.path as osp
import signal
import time

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CFG = osp.join(ROOT, 'configs', 'hournas')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
BUDGET = 2_850_000
# 6 images per class, 2 of them held out: 40 supernet images, 20 held out
DATA = ['train_dataloader.dataset.dataset.indices=60',
        'train_dataloader.dataset.per_class=2',
        'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0']
SUPERNET = DATA + ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']


def _search(supernet_dir, generations=2):
    return DATA + [
        'train_cfg.eval_dataloader.dataset.dataset.indices=60',
        'train_cfg.eval_dataloader.dataset.per_class=2',
        'train_cfg.eval_dataloader.num_workers=0',
        'train_cfg.calib_batches=2', 'train_cfg.searcher.population_size=4',
        f'train_cfg.searcher.num_generations={generations}',
        'train_cfg.searcher.top_k=2', 'train_cfg.searcher.num_mutations=2',
        'train_cfg.searcher.num_crossovers=2',
        f'train_cfg.supernet_checkpoint={supernet_dir}']


def _run(tool, config, work, options, **kwargs):
    res = tool([TRAIN, osp.join(CFG, config), '--work-dir', str(work),
                '--cfg-options', *options], **kwargs)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def stage1(toy_data, tool, tmp_path_factory):
    """A stage 1 supernet trained for one epoch (shared by the tests)."""
    work = tmp_path_factory.mktemp('hournas') / 's1'
    _run(tool, 'toy_hournas_stage1-supernet.py', work, SUPERNET)
    assert list(work.glob('epoch_1.pth'))
    return work


def test_toy_pipeline_runs_through_the_tools(stage1, tool, tmp_path,
                                             cls_smoke_options):
    s1 = stage1
    s1s, s2, s2s = (tmp_path / n for n in ('s1s', 's2', 's2s'))
    _run(tool, 'toy_hournas_stage1-search.py', s1s, _search(s1))
    found = _json(s1s / 'best_genotype.json')
    vital = found['vital']
    assert sorted(vital) == ['0', '2', '4']
    assert [found['genotype'][i] for i in (1, 3, 5)] == ['skip'] * 3
    # feasible: the cheapest non-vital completion fits the budget (macs
    # holds that completion: 55,968 + 57,760 + 87,840 MACs)
    assert found['macs'] <= BUDGET

    log = _run(tool, 'toy_hournas_stage2-supernet.py', s2, SUPERNET + [
        f'model.backbone.fixed_vital={s1s}/best_genotype.json',
        f'load_from={s1}'])
    assert 'shrunk the non-vital space' in log
    space = _json(s2 / 'space.json')
    assert sorted(space['probs']) == ['1', '3', '5']
    assert space['shrinker']['feasibility'] >= 0.88
    for dist in space['probs'].values():
        assert abs(sum(dist.values()) - 1) < 1e-9

    _run(tool, 'toy_hournas_stage2-search.py', s2s, _search(s2) + [
        f'model.backbone.fixed_vital={s1s}/best_genotype.json',
        f'train_cfg.space_file={s2}/space.json'])
    best = _json(s2s / 'best_genotype.json')
    assert 0.9 * BUDGET <= best['macs'] <= BUDGET
    assert {k: best['genotype'][int(k)] for k in vital} == vital
    for k, dist in space['probs'].items():  # only kept ops were searched
        assert best['genotype'][int(k)] in dist
    log_entries = _json(s2s / 'search_log.json')
    assert all(0.9 * BUDGET <= e['macs'] <= BUDGET for e in log_entries)

    # the exported config retrains the genotype from scratch and tests
    exported = s2s / 'retrain_config.py'
    cfg = Config.fromfile(str(exported))
    assert cfg.model.backbone.type == 'HourNASNet'
    assert cfg.model.backbone.genotype == best['genotype']
    retrain = tmp_path / 'retrain'
    res = tool([TRAIN, str(exported), '--work-dir', str(retrain),
                '--cfg-options', *cls_smoke_options])
    assert res.returncode == 0, res.stderr[-3000:]
    res = tool([osp.join(ROOT, 'tools', 'test.py'), str(exported),
                str(retrain / 'epoch_1.pth'), '--work-dir', str(retrain),
                '--cfg-options', 'test_dataloader.dataset.indices=4',
                'test_dataloader.num_workers=0'])
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'accuracy/top1' in res.stdout + res.stderr
    # the retrained net is the searched one, at its MACs
    from projects.common.complexity import count_conv_linear_macs
    from projects.hournas import HourNASNet
    net = HourNASNet(**{k: v for k, v in cfg.model.backbone.items()
                        if k != 'type'})
    assert count_conv_linear_macs(
        torch.nn.Sequential(net), [torch.zeros(1, 3, 32, 32)]) + 1280 == \
        best['macs']  # + the 128 x 10 classifier


def test_killed_search_resumes_to_the_uninterrupted_result(
        stage1, tool, start_run, tmp_path):
    options = _search(stage1, generations=4)
    ref = tmp_path / 'ref'
    _run(tool, 'toy_hournas_stage1-search.py', ref, options)

    run = tmp_path / 'run'
    proc = start_run([TRAIN, osp.join(CFG, 'toy_hournas_stage1-search.py'),
                      '--work-dir', str(run), '--cfg-options', *options],
                     server='resumed')
    state = run / 'search_state.json'
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, 'the search ended before generation 1'
        assert time.time() < deadline
        if state.exists() and _json(state)['generation'] >= 1:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _json(state)['generation']
    assert killed_at < 4 and not (run / 'best_genotype.json').exists()

    log = _run(tool, 'toy_hournas_stage1-search.py', run, options,
               server='resumed')
    assert f'after generation {killed_at}' in log
    assert 'generation 0: candidate' not in log  # finished ones not redone
    assert _json(run / 'search_log.json') == _json(ref / 'search_log.json')
    assert _json(run / 'best_genotype.json') == \
        _json(ref / 'best_genotype.json')

    # the same work dir with another space is refused, naming the file
    res = tool([TRAIN, osp.join(CFG, 'toy_hournas_stage1-search.py'),
                '--work-dir', str(run), '--cfg-options', *options,
                'model.backbone.fixed_choices.0=ir_k3_e1'],
               server='resumed')
    assert res.returncode != 0
    assert 'search_state.json: cannot resume' in res.stderr


def test_search_budget_below_the_smallest_network_is_refused(
        stage1, tool, tmp_path):
    res = tool([TRAIN, osp.join(CFG, 'toy_hournas_stage1-search.py'),
                '--work-dir', str(tmp_path / 'x'), '--cfg-options',
                *_search(stage1), 'train_cfg.budget=500000'])
    assert res.returncode != 0
    assert 'below the smallest network of the space (890,240 MACs)' in \
        res.stderr, res.stderr[-2000:]


def test_supernet_trains_on_two_cpu_processes(toy_data, tool, tmp_path,
                                              free_port):
    work = tmp_path / 'work'
    res = tool([
        osp.join(ROOT, 'tools', 'dist_train.sh'),
        osp.join(CFG, 'toy_hournas_stage1-supernet.py'), '2', '--work-dir',
        str(work), '--cfg-options', *SUPERNET,
        'train_dataloader.persistent_workers=False'
    ], cwd=str(tmp_path), env=dict(PORT=str(free_port), OMP_NUM_THREADS='1'))
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert 'the same path on all 2 ranks' in out, out[-3000:]
    # 40 images / (2 ranks x 8) = 3 iterations per rank
    assert 'Epoch(train) [1][3/3]' in out, out[-3000:]
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu',
                      weights_only=False)
    # the toy supernet's ops are slices of one shared op per position
    assert any('.shared.largest.' in k for k in ckpt['state_dict'])

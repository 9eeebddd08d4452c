# Copyright (c) EVLab contributors.
"""Hit-Detector's toy pipeline through the tools, as a user runs it:
screening -> sub_spaces.json -> trinity search -> genotype.json and
retrain_config.py -> the retrain trains and validates; a search killed inside
an epoch (architecture steps on) resumes to the uninterrupted result."""
import json
import os
import os.path as osp
import signal
import time

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CFG = osp.join(ROOT, 'configs', 'hit_detector')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
# 8 training images: 4 per half, 2 iterations of 2 per epoch; 2 val images
SMALL = ['train_dataloader.dataset.indices=8',
         'val_dataloader.dataset.indices=2',
         'test_dataloader.dataset.indices=2']
# fewer searched positions than the configs (2 backbone layers, a cell, a
# block): the supernet's cost is in its mixed ops
POSITIONS = ['model.searchable.backbone=[2,10]', 'model.searchable.neck=[4]',
             'model.searchable.head=[1]']
# and fewer RoIs: the RoI blocks' cost is per RoI
ROIS = ['train_cfg.rcnn.sampler.num=16',
        'train_cfg.rpn_proposal.max_per_img=64',
        'test_cfg.rpn.max_per_img=32']
# one epoch of 2 iterations with the architecture stepping from the start,
# and no validation: the search runs here check the wiring, not a result
NO_VAL = ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
SEARCH = SMALL + POSITIONS + NO_VAL + [
    f'model.detector.{o}' for o in ROIS] + [
    'train_cfg.max_epochs=1', 'train_cfg.arch_warmup_epochs=0']


def _run(tool, args, **kwargs):
    res = tool(args, **kwargs)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def screened(toy_data, tool, tmp_path_factory):
    work = tmp_path_factory.mktemp('hitdet') / 'screen'
    _run(tool, [TRAIN, osp.join(CFG, 'toy_hitdet_screen.py'), '--work-dir',
                str(work), '--cfg-options', *SEARCH])
    return work / 'sub_spaces.json'


def _search_options(sub_spaces):
    # an iteration checkpoint after each step, for the kill test
    return SEARCH + [f'model.sub_spaces={sub_spaces}',
                     'default_hooks.checkpoint.by_epoch=False',
                     'default_hooks.checkpoint.interval=1']


@pytest.fixture(scope='module')
def searched(screened, tool, tmp_path_factory):
    work = tmp_path_factory.mktemp('hitdet') / 'search'
    _run(tool, [TRAIN, osp.join(CFG, 'toy_hitdet_search.py'), '--work-dir',
                str(work), '--cfg-options', *_search_options(screened)])
    return work


def test_screening_writes_k_ops_per_component(screened):
    data = _json(screened)
    assert set(data['sub_spaces']) == {'backbone', 'neck', 'head'}
    space = {'ir_k3_e3', 'ir_k5_e6', 'sd_k3_d1', 'conv_1x1'}
    for name, ops in data['sub_spaces'].items():
        assert len(ops) == 2 and set(ops) <= space, name
        norms = data['column_norms'][name]
        # the kept ops are the two largest columns
        assert min(norms[o] for o in ops) >= max(
            v for o, v in norms.items() if o not in ops)


def test_search_exports_a_genotype_in_the_sub_spaces_that_retrains(
        screened, searched, tool, tmp_path):
    genotype = _json(searched / 'genotype.json')['genotype']
    spaces = _json(screened)['sub_spaces']
    assert [len(genotype[c]) for c in ('backbone', 'neck', 'head')] == \
        [21, 8, 4]
    from projects.hit_detector import HIT_BACKBONE, HIT_HEAD, HIT_NECK
    for i in (2, 10):  # the searched backbone layers
        assert genotype['backbone'][i - 1] in spaces['backbone']
    assert genotype['neck'][4] in spaces['neck']
    assert genotype['head'][1] in spaces['head']
    # the other positions keep the template's (released) ops
    assert [op for i, op in enumerate(genotype['backbone'])
            if i not in (1, 9)] == [op for i, op in enumerate(HIT_BACKBONE)
                                    if i not in (1, 9)]
    assert genotype['neck'][:4] == list(HIT_NECK[:4])
    assert genotype['head'][0] == HIT_HEAD[0]
    retrain = searched / 'retrain_config.py'
    work = tmp_path / 'retrain'
    log = _run(tool, [TRAIN, str(retrain), '--work-dir', str(work),
                '--cfg-options', *SMALL, *[f'model.{o}' for o in ROIS],
                'train_cfg.max_epochs=1',
                'train_dataloader.batch_size=4',
                'train_dataloader.num_workers=0',
                'val_dataloader.num_workers=0'])
    assert 'coco/bbox_mAP' in log  # validated after its epoch
    # the retrained detector has the searched ops
    from mmengine.config import Config
    cfg = Config.fromfile(str(retrain))
    assert cfg.model.neck.genotype == genotype['neck']
    assert cfg.model.roi_head.bbox_head.blocks == genotype['head']


def test_killed_search_resumes_to_the_uninterrupted_result(
        screened, searched, tool, start_run, tmp_path):
    run = tmp_path / 'run'
    args = [TRAIN, osp.join(CFG, 'toy_hitdet_search.py'), '--work-dir',
            str(run), '--cfg-options', *_search_options(screened)]
    # the main tool server (started by the fixtures): a second one costs
    # ~15 s; resume across hash seeds is tests/tools/test_resume.py's
    proc = start_run(args)
    deadline = time.time() + 300
    # after iteration 1 of 2 (weight and architecture steps done)
    while not (run / 'iter_1.pth').exists():
        assert proc.poll() is None, 'the search ended before iteration 1'
        assert time.time() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / 'iter_2.pth').exists()
    log = _run(tool, args + ['--resume'])
    assert 'resume: epoch 1, after iteration 1 of 2' in log
    assert _json(run / 'genotype.json') == _json(searched / 'genotype.json')

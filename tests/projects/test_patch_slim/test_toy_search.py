# Copyright (c) EVLab contributors.
"""Patch Slimming's toy pipeline through the tools, as a user runs it:
train the dense model -> search (budget mode) -> fine-tune with KD ->
tools/test.py; a larger tolerance never keeps more tokens; a killed
search resumes without redoing finished blocks and ends with the
uninterrupted result. The search's rules on a tiny model in-process: a
larger tolerance never keeps more tokens; a budget below the class
token's cost is refused."""
import json
import os
import os.path as osp
import signal
import time

import pytest
import torch
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
CFG = osp.join(ROOT, 'configs', 'patch_slim')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
# no CNN baseline in CI: the embedding starts from scratch here
SMALL = ['model.backbone.cnn.init_cfg=None',
         'train_dataloader.num_workers=0', 'train_dataloader.batch_size=8']


def _search(dense, *extra):
    return SMALL + [
        f'train_cfg.dense_checkpoint={dense}', 'train_cfg.num_calib=8',
        'train_cfg.num_error=8', 'train_cfg.r0=8',
        'train_cfg.finetune_batch_size=4', *extra]


def _run(tool, config, work, options, **kwargs):
    res = tool([TRAIN, osp.join(CFG, config), '--work-dir', str(work),
                '--cfg-options', *options], **kwargs)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout + res.stderr


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def dense(toy_data, tool, tmp_path_factory, cls_smoke_options):
    """The toy dense model trained for one smoke epoch."""
    work = tmp_path_factory.mktemp('patch_slim') / 'dense'
    _run(tool, 'toy_vit_ps-train.py', work, cls_smoke_options + [
        'model.backbone.cnn.init_cfg=None'])
    assert (work / 'epoch_1.pth').exists()
    return work


def test_toy_pipeline_runs_through_the_tools(dense, tool, tmp_path,
                                             cls_smoke_options):
    search = tmp_path / 'search'
    log = _run(tool, 'toy_vit_ps-search.py', search, _search(
        dense, 'train_cfg.bisect_steps=3', 'train_cfg.finetune_steps=2',
        'train_cfg.refine_steps=1'))
    assert 'bisection: epsilon' in log and 'block 0 keeps' in log
    keep = _json(search / 'keep_indices.json')
    lists = keep['keep_indices']
    assert len(lists) == 6 and lists[-1] == [0]
    assert all(set(a) >= set(b) for a, b in zip(lists, lists[1:]))
    assert keep['macs'] <= 54_850_000 < keep['dense_macs']
    # the rerun with fine-tuning, unless its lists grew past the budget
    assert keep['finetune_steps'] in (0, 2)
    ckpt = torch.load(search / 'pruned.pth', map_location='cpu',
                      weights_only=False)
    mask = ckpt['state_dict']['backbone.keep_mask']
    assert [r.nonzero().flatten().tolist() for r in mask] == lists

    # the pruned checkpoint tests as it is, its keep lists with it
    res = tool([TEST, osp.join(CFG, 'toy_vit_ps-search.py'),
                str(search / 'pruned.pth'), '--work-dir',
                str(tmp_path / 'test_pruned'), '--cfg-options',
                'test_dataloader.dataset.indices=8',
                'test_dataloader.num_workers=0'])
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert 'accuracy/top1' in res.stdout + res.stderr

    tune = tmp_path / 'finetune'
    _run(tool, 'toy_vit_ps-finetune.py', tune, cls_smoke_options + [
        f'model.student.init_cfg.checkpoint={search}/pruned.pth',
        f'model.teacher_ckpt={dense}/epoch_1.pth', 'train_cfg.max_epochs=1'])
    res = tool([TEST, osp.join(tune, 'toy_vit_ps-finetune.py'),
                str(tune / 'epoch_1.pth'), '--work-dir',
                str(tmp_path / 'test_tuned'), '--cfg-options',
                'test_dataloader.dataset.indices=8',
                'test_dataloader.num_workers=0'])
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    tuned = torch.load(tune / 'epoch_1.pth', map_location='cpu',
                       weights_only=False)['state_dict']
    assert torch.equal(tuned['student.backbone.keep_mask'], mask)


def test_killed_search_resumes_to_the_uninterrupted_result(
        dense, tool, start_run, tmp_path):
    options = _search(dense, 'train_cfg.budget=None',
                      'train_cfg.epsilon=0.01', 'train_cfg.finetune_steps=3')
    ref = tmp_path / 'ref'
    _run(tool, 'toy_vit_ps-search.py', ref, options)

    run = tmp_path / 'run'
    proc = start_run([TRAIN, osp.join(CFG, 'toy_vit_ps-search.py'),
                      '--work-dir', str(run), '--cfg-options', *options],
                     server='resumed')
    state = run / 'search_state.json'
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, 'the search ended before block 3'
        assert time.time() < deadline
        if state.exists():
            cur = _json(state)['current']
            if cur and len(cur['log']) >= 2:
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(_json(state)['current']['log'])
    assert not (run / 'keep_indices.json').exists()

    log = _run(tool, 'toy_vit_ps-search.py', run, options, server='resumed')
    assert f'({done} blocks reused)' in log or \
        f'the current one at block {4 - done}' in log, log[-3000:]
    assert 'block 4 keeps' not in log  # finished blocks are not redone
    assert _json(run / 'keep_indices.json') == \
        _json(ref / 'keep_indices.json')

    # the same work dir with another tolerance is refused, naming the file
    res = tool([TRAIN, osp.join(CFG, 'toy_vit_ps-search.py'), '--work-dir',
                str(run), '--cfg-options', *options[:-2],
                'train_cfg.epsilon=0.5', 'train_cfg.finetune_steps=3'],
               server='resumed')
    assert res.returncode == 2
    assert 'search_state.json: cannot resume this search: it was run ' \
        'with other epsilon' in res.stderr, res.stderr[-2000:]


# ---- in-process: the loop on a tiny random model ---------------------------


class _Images(torch.utils.data.Dataset):
    """32 random 32x32 images with labels, as mmpretrain packs them."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = (torch.rand(32, 3, 32, 32, generator=g) * 255).byte()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from mmpretrain.structures import DataSample
        return dict(inputs=self.x[i],
                    data_samples=DataSample().set_gt_label(i % 4))


def _tiny_loop(tmp_path, **kwargs):
    from mmengine.dataset import pseudo_collate
    from mmpretrain.registry import MODELS

    from projects.patch_slim import PatchSlimSearchLoop
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='PatchSlimViT',
                      arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                                feedforward_channels=64),
                      img_size=32, patch_size=8),  # 17 tokens
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=4,
                  in_channels=32),
        data_preprocessor=dict(type='ClsDataPreprocessor',
                               mean=[127.5] * 3, std=[64.0] * 3))).eval()
    with torch.no_grad():  # a non-trivial model: tokens matter
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))

    class Runner:
        work_dir, seed = str(tmp_path), 0
    Runner.model = model
    loader = torch.utils.data.DataLoader(_Images(), batch_size=8,
                                         collate_fn=pseudo_collate)
    defaults = dict(num_calib=16, num_error=16, r0=2)
    return PatchSlimSearchLoop(Runner(), loader, **dict(defaults, **kwargs))


def test_larger_tolerance_never_keeps_more_tokens(tmp_path):
    tokens = []
    for eps in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        loop = _tiny_loop(tmp_path / str(eps), epsilon=eps)
        loop.run()
        tokens.append(loop.model.backbone.tokens_per_block)
    for tighter, looser in zip(tokens, tokens[1:]):
        assert all(a >= b for a, b in zip(tighter, looser)), tokens
    assert tokens[0] != tokens[-1], tokens  # the tolerance matters
    assert all(t[-1] == 1 for t in tokens)


def test_budget_mode_meets_the_budget_with_the_smallest_tolerance(tmp_path):
    loop = _tiny_loop(tmp_path, budget=600_000, bisect_steps=6)
    loop.run()
    keep = _json(tmp_path / 'keep_indices.json')
    assert keep['macs'] <= 600_000 < keep['dense_macs']
    runs = _json(tmp_path / 'search_log.json')['runs']
    # every run under the chosen tolerance misses the budget
    assert all(r['macs'] > 600_000 for r in runs
               if r['eps'] < keep['epsilon'])


def test_budget_mode_with_fine_tuning_keeps_the_run_closest_below(
        tmp_path):
    loop = _tiny_loop(tmp_path, budget=600_000, bisect_steps=4,
                      finetune_steps=2, finetune_batch_size=4,
                      refine_steps=2, finetune_lr=1e-3)
    loop.run()
    keep = _json(tmp_path / 'keep_indices.json')
    assert keep['macs'] <= 600_000
    tuned = [r for r in _json(tmp_path / 'search_log.json')['runs']
             if r['finetune_steps']]
    assert len(tuned) in (1, 3)  # the rerun, then 2 refinement steps
    if keep['finetune_steps']:
        # no fine-tuned run within the budget comes closer to it
        assert keep['macs'] == max(r['macs'] for r in tuned
                                   if r['macs'] <= 600_000)
    # the model holds the chosen run's lists
    assert loop.model.backbone.keep_lists() == keep['keep_indices']


def test_budget_below_the_class_token_alone_is_refused(tmp_path):
    from projects.common.errors import EVLabError
    loop = _tiny_loop(tmp_path, budget=10_000)
    with pytest.raises(EVLabError, match='is below what the class token '
                       'alone costs'):
        loop.run()

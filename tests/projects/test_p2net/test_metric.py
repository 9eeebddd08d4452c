# Copyright (c) EVLab contributors.
"""P2Net's Market-1501 evaluation: the spec's hand example, parity with
torchreid 0.2.5 (CMC, mAP_ir, re-ranking) and with a per-query loop written
from the protocol (trapezoid mAP, mINP, junk, ties), chunking, the metric
class through the registry, ranked-list pictures and the benchmark tool.

torchreid is the reference and must be installed (``make setup`` does):
the tests fail, not skip, without it.
"""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

from projects.p2net.metric import (
    QueryGalleryReIDMetric,
    ReIDEvalError,
    _hit_ranks,
    draw_ranked_list,
    evaluate_features,
    evaluate_rank,
    load_torchreid_file,
    pairwise_distance,
    re_ranking,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def load_torchreid(rel_path: str):
    """A torchreid 0.2.5 file loaded alone; a missing torchreid fails."""
    try:
        return load_torchreid_file(rel_path)
    except ReIDEvalError as e:
        pytest.fail(str(e))


@pytest.fixture(scope='module')
def tr_rank():
    return load_torchreid('reid/metrics/rank.py')


@pytest.fixture(scope='module')
def tr_rerank():
    return load_torchreid('reid/utils/rerank.py')


def loop_reference(dist, q_pids, g_pids, q_camids, g_camids, max_rank=10,
                   drop_junk=True):
    """The protocol one query at a time (spec 2.4), in float64."""
    dist = np.asarray(dist, dtype=np.float64)
    cmc = np.zeros(max_rank)
    ap_t = ap_ir = inp = 0.0
    valid = skipped = 0
    for q in range(len(q_pids)):
        order = np.argsort(dist[q], kind='stable')
        p, c = g_pids[order], g_camids[order]
        keep = ~((p == q_pids[q]) & (c == q_camids[q]))
        if drop_junk:
            keep &= p != -1
        hit = p[keep] == q_pids[q]
        if not hit.any():
            skipped += 1
            continue
        valid += 1
        r = np.flatnonzero(hit) + 1.0  # 1-based ranks of the hits
        i = np.arange(1, len(r) + 1)
        cmc += r[0] <= np.arange(1, max_rank + 1)
        ap_ir += np.mean(i / r)
        prev = np.array([1.0 if rk == 1 else (k - 1) / (rk - 1)
                         for k, rk in zip(i, r)])
        ap_t += np.mean((prev + i / r) / 2)
        inp += len(r) / r[-1]  # AGW: n / rank of the hardest hit
    return dict(cmc=cmc / valid, trapezoid=ap_t / valid, ir=ap_ir / valid,
                minp=inp / valid, skipped=skipped)


def assert_matches_reference(res, ref, atol=1e-10):
    np.testing.assert_allclose(res.cmc.numpy(), ref['cmc'], atol=atol)
    assert res.ap['trapezoid'] == pytest.approx(ref['trapezoid'], abs=atol)
    assert res.ap['ir'] == pytest.approx(ref['ir'], abs=atol)
    assert res.minp == pytest.approx(ref['minp'], abs=atol)
    assert res.num_skipped == ref['skipped']


def spec_problem(seed=0, dim=16):
    """Spec 5: 30 ids, 6 cameras, 60 queries, 400 gallery items of which
    40 have pid -1 and 50 pid 0; random continuous features (float64)."""
    g = np.random.default_rng(seed)
    q_pids = g.integers(1, 31, 60)
    q_camids = g.integers(0, 6, 60)
    g_pids = np.concatenate([np.full(40, -1), np.zeros(50, np.int64),
                             g.integers(1, 31, 310)])
    g.shuffle(g_pids)
    g_camids = g.integers(0, 6, 400)
    q = torch.from_numpy(g.standard_normal((60, dim)))
    gal = torch.from_numpy(g.standard_normal((400, dim)))
    return q, gal, q_pids, g_pids, q_camids, g_camids


def market_shaped(seed=1, nq=200, ng=1500, dim=32, num_ids=80):
    """More queries, ids on several cameras, features near their id's
    centre; a tenth of the gallery junk, 2/15 distractors, and queries of 5
    ids that have no gallery image (skipped)."""
    g = np.random.default_rng(seed)
    q_pids = g.integers(1, num_ids + 6, nq)  # the last 5 ids: no gallery
    q_camids = g.integers(0, 6, nq)
    n_junk, n_distr = ng // 10, ng * 2 // 15
    g_pids = np.concatenate([np.full(n_junk, -1),
                             np.zeros(n_distr, np.int64),
                             g.integers(1, num_ids + 1,
                                        ng - n_junk - n_distr)])
    g.shuffle(g_pids)
    g_camids = g.integers(0, 6, ng)
    centre = g.standard_normal((num_ids + 6, dim))
    centre[0] = 0

    def feats(pids):
        return torch.from_numpy(1.2 * centre[np.maximum(pids, 0)]
                                + g.standard_normal((len(pids), dim)))

    return feats(q_pids), feats(g_pids), q_pids, g_pids, q_camids, g_camids


def torchreid_scores(tr_rank, dist, q_pids, g_pids, q_camids, g_camids):
    """torchreid on the same problem, its gallery without pid -1 (it does
    not know junk)."""
    keep = g_pids != -1
    cmc, mean_ap = tr_rank.evaluate_rank(
        np.asarray(dist)[:, keep], q_pids, g_pids[keep], q_camids,
        g_camids[keep], max_rank=10, use_cython=False)
    return cmc, mean_ap


# ---- the hand example (spec 2.4) -------------------------------------------

HAND = dict(q_pids=[1], q_camids=[0], g_pids=[1, -1, 0, 1, 2, 1],
            g_camids=[0, 1, 1, 1, 2, 2])


@pytest.mark.parametrize('chunk_size', [None, 1])
def test_hand_example(chunk_size):
    dist = torch.arange(1, 7, dtype=torch.float64)[None] / 10  # sorted
    res = evaluate_rank(dist, **HAND, chunk_size=chunk_size)
    assert res.ap['ir'] == pytest.approx(0.5, abs=1e-7)
    assert res.ap['trapezoid'] == pytest.approx(1 / 3, abs=1e-7)
    np.testing.assert_allclose(res.cmc.numpy(), [0] + [1] * 9, atol=1e-7)
    assert res.minp == pytest.approx(2 / 4, abs=1e-7)  # last hit at rank 4
    assert res.num_valid == 1 and res.num_skipped == 0


def test_hand_example_gallery_order_does_not_matter():
    perm = [3, 5, 0, 2, 4, 1]
    dist = (torch.arange(1, 7, dtype=torch.float64) / 10)[perm][None]
    res = evaluate_rank(dist, HAND['q_pids'],
                        [HAND['g_pids'][i] for i in perm], HAND['q_camids'],
                        [HAND['g_camids'][i] for i in perm])
    assert res.ap['ir'] == pytest.approx(0.5, abs=1e-7)
    assert res.ap['trapezoid'] == pytest.approx(1 / 3, abs=1e-7)


def test_hand_example_junk_kept_is_a_miss():
    # drop_junk=False: (-1, 1) becomes a miss at rank 1, hits at 3 and 5
    dist = torch.arange(1, 7, dtype=torch.float64)[None] / 10
    res = evaluate_rank(dist, **HAND, drop_junk=False)
    assert res.ap['ir'] == pytest.approx((1 / 3 + 2 / 5) / 2, abs=1e-12)
    assert res.ap['trapezoid'] == pytest.approx(
        ((0 + 1 / 3) / 2 + (1 / 4 + 2 / 5) / 2) / 2, abs=1e-12)
    np.testing.assert_allclose(res.cmc.numpy()[:3], [0, 0, 1])


def test_first_hit_at_rank_one_uses_precision_one():
    # P' = 1 when r_i = 1: hits at ranks 1 and 3
    dist = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    res = evaluate_rank(dist, [5], [5, 0, 5], [0], [1, 1, 2])
    assert res.ap['trapezoid'] == pytest.approx(
        ((1 + 1) / 2 + (1 / 2 + 2 / 3) / 2) / 2, abs=1e-12)
    assert res.ap['ir'] == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)


# ---- parity with torchreid and with the per-query loop ---------------------


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_torchreid_parity_spec_case(tr_rank, metric):
    q, g, q_pids, g_pids, q_camids, g_camids = spec_problem()
    dist = pairwise_distance(q, g, metric)
    res = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
    cmc, mean_ap = torchreid_scores(tr_rank, dist.numpy(), q_pids, g_pids,
                                    q_camids, g_camids)
    assert res.ap['ir'] == pytest.approx(float(mean_ap), abs=1e-6)
    for k in (1, 5, 10):
        assert float(res.cmc[k - 1]) == pytest.approx(float(cmc[k - 1]),
                                                      abs=1e-6)
    # torchreid 0.2.5 has no trapezoid mAP nor mINP: the loop has them
    assert_matches_reference(res, loop_reference(
        dist.numpy(), q_pids, g_pids, q_camids, g_camids))
    # from the features, chunk by chunk: the same
    feat = evaluate_features(q, g, q_pids, g_pids, q_camids, g_camids,
                             metric=metric, chunk_size=7)
    assert_matches_reference(feat, loop_reference(
        dist.numpy(), q_pids, g_pids, q_camids, g_camids))


def test_torchreid_parity_market_shaped(tr_rank):
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped()
    dist = pairwise_distance(q, g, 'cosine')
    res = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids,
                        chunk_size=64)
    cmc, mean_ap = torchreid_scores(tr_rank, dist.numpy(), q_pids, g_pids,
                                    q_camids, g_camids)
    assert 0.3 < res.ap['ir'] < 0.99  # a ranking that is not trivial
    assert res.ap['ir'] == pytest.approx(float(mean_ap), abs=1e-6)
    for k in (1, 5, 10):
        assert float(res.cmc[k - 1]) == pytest.approx(float(cmc[k - 1]),
                                                      abs=1e-6)
    ref = loop_reference(dist.numpy(), q_pids, g_pids, q_camids, g_camids)
    assert_matches_reference(res, ref)
    assert res.num_skipped == int((q_pids > 80).sum()) > 0
    assert res.num_valid + res.num_skipped == len(q_pids)


def test_chunked_equals_unchunked():
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped(
        nq=60, ng=400, num_ids=30)
    dist = pairwise_distance(q, g, 'cosine')
    ids = (q_pids, g_pids, q_camids, g_camids)
    whole = evaluate_rank(dist, *ids)
    for chunk in (1, 7, len(q_pids)):
        for res in (evaluate_rank(dist, *ids, chunk_size=chunk),
                    evaluate_features(q, g, *ids, chunk_size=chunk)):
            np.testing.assert_allclose(res.cmc.numpy(), whole.cmc.numpy(),
                                       rtol=0, atol=1e-12)
            for mode in ('trapezoid', 'ir'):
                assert res.ap[mode] == pytest.approx(whole.ap[mode],
                                                     abs=1e-12)
            assert res.minp == pytest.approx(whole.minp, abs=1e-12)
            assert res.num_skipped == whole.num_skipped


def test_ties_follow_a_stable_sort():
    # integer distances: ties everywhere, broken by the gallery index
    g = np.random.default_rng(3)
    for _ in range(20):
        nq, ng = int(g.integers(1, 30)), int(g.integers(5, 120))
        # malformed queries of pid -1 / 0 too: never a hit / distractor hits
        q_pids, g_pids = g.integers(-1, 6, nq), g.integers(-1, 6, ng)
        q_pids[0] = g_pids[0] = 1  # at least one query has a hit
        q_camids, g_camids = g.integers(0, 3, nq), g.integers(0, 3, ng)
        g_camids[0] = (q_camids[0] + 1) % 3
        dist = torch.from_numpy(g.integers(0, 4, (nq, ng)).astype(float))
        res = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids,
                            chunk_size=4)
        assert_matches_reference(res, loop_reference(
            dist.numpy(), q_pids, g_pids, q_camids, g_camids), atol=1e-12)
        # both ways of ranking the hits give the same ranks, bit for bit
        ids = [torch.as_tensor(x) for x in (q_pids, q_camids, g_pids,
                                            g_camids)]
        a = _hit_ranks(dist, *ids, True, method='count')
        b = _hit_ranks(dist, *ids, True, method='sort')
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_random_features_take_the_sort_path_and_agree():
    # hits far down every list: 'auto' sorts; the result is the same
    q, g, q_pids, g_pids, q_camids, g_camids = spec_problem(seed=5)
    dist = pairwise_distance(q, g)
    ids = [torch.as_tensor(x) for x in (q_pids, q_camids, g_pids,
                                        g_camids)]
    for method in ('auto', 'count'):
        for x, y in zip(_hit_ranks(dist, *ids, True, method=method),
                        _hit_ranks(dist, *ids, True, method='sort')):
            assert torch.equal(x, y)


def test_no_valid_query_is_an_error():
    dist = torch.rand(2, 3)
    with pytest.raises(ReIDEvalError, match='no query has a match'):
        evaluate_rank(dist, [1, 2], [3, 3, 0], [0, 0], [1, 1, 1])
    with pytest.raises(ReIDEvalError, match='no query has a match'):
        # the only hit is on the query's camera
        evaluate_rank(dist, [1, 1], [1, 0, 0], [0, 0], [0, 1, 1])


def test_bad_arguments():
    dist = torch.rand(2, 3)
    ids = ([1, 2], [1, 2, 0], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match='ap_modes'):
        evaluate_rank(dist, *ids, ap_modes=('voc',))
    with pytest.raises(ValueError, match='distmat is 2 x 3'):
        evaluate_rank(dist, [1], *ids[1:])
    with pytest.raises(ValueError, match='metric'):
        evaluate_features(torch.rand(2, 4), torch.rand(3, 4), *ids,
                          metric='hamming')
    with pytest.raises(ValueError, match='features must be'):
        evaluate_features(torch.rand(2, 4), torch.rand(3, 5), *ids)


# ---- re-ranking ------------------------------------------------------------


@pytest.mark.parametrize('k1,k2,lam', [(20, 6, 0.3), (7, 3, 0.5), (5, 1, 0.1)])
def test_re_ranking_equals_torchreid(tr_rerank, k1, k2, lam):
    g = np.random.default_rng(k1)
    q = torch.from_numpy(g.standard_normal((25, 12), dtype=np.float32))
    gal = torch.from_numpy(g.standard_normal((70, 12), dtype=np.float32))
    q_g, q_q, g_g = (pairwise_distance(a, b, 'euclidean')
                     for a, b in ((q, gal), (q, q), (gal, gal)))
    ours = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam,
                      chunk_size=16)
    ref = tr_rerank.re_ranking(q_g.numpy(), q_q.numpy(), g_g.numpy(),
                               k1=k1, k2=k2, lambda_value=lam)
    assert ours.shape == (25, 70)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-5)


# ---- the metric class ------------------------------------------------------


def make_samples(q, g, q_pids, g_pids, q_camids, g_camids, as_dict=True,
                 root='img'):
    samples = []
    for part, feats, pids, cams in (('q', q, q_pids, q_camids),
                                    ('g', g, g_pids, g_camids)):
        for k in range(len(pids)):
            s = DataSample(metainfo=dict(
                pid=int(pids[k]), camid=int(cams[k]), is_query=part == 'q',
                img_path=osp.join(root, f'{part}{k:05d}.jpg')))
            f = feats[k].float()
            s.set_field({'pool5': f, 'embed': f[:4]}, 'pred_feats')
            samples.append(s.to_dict() if as_dict else s)
    return samples


def build_metric(**kwargs):
    init_default_scope('mmpretrain')
    return METRICS.build(dict(type='QueryGalleryReIDMetric', **kwargs))


def feed(metric, samples, batch=16):
    for s in range(0, len(samples), batch):
        metric.process({}, samples[s:s + batch])


def evaluate(metric):
    # the size is the dataset's: mmengine truncates the results to it
    return metric.evaluate(len(metric.results))


def test_metric_end_to_end():
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped(
        nq=80, ng=500, num_ids=30)
    metric = build_metric()
    assert isinstance(metric, QueryGalleryReIDMetric)
    samples = make_samples(q, g, q_pids, g_pids, q_camids, g_camids)
    rng = np.random.default_rng(0)  # ranks' order does not matter
    feed(metric, [samples[i] for i in rng.permutation(len(samples))])
    out = evaluate(metric)
    assert set(out) == {'reid/mAP', 'reid/mAP_ir', 'reid/mINP',
                        'reid/Rank-1', 'reid/Rank-5', 'reid/Rank-10',
                        'reid/skipped_queries'}
    ref = evaluate_features(q.float(), g.float(), q_pids, g_pids, q_camids,
                            g_camids)
    assert out['reid/mAP'] == pytest.approx(100 * ref.ap['trapezoid'])
    assert out['reid/mAP_ir'] == pytest.approx(100 * ref.ap['ir'])
    assert out['reid/mINP'] == pytest.approx(100 * ref.minp)
    for k in (1, 5, 10):
        assert out[f'reid/Rank-{k}'] == pytest.approx(
            100 * float(ref.cmc[k - 1]))
    assert out['reid/skipped_queries'] == ref.num_skipped > 0


def test_metric_other_feature_modes_and_data_samples():
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped(
        nq=30, ng=200, num_ids=20)
    metric = build_metric(feature='embed', ranks=(1, 3), ap_modes=('ir',),
                          metric='euclidean', prefix='market')
    feed(metric, make_samples(q, g, q_pids, g_pids, q_camids, g_camids,
                              as_dict=False))
    out = evaluate(metric)
    assert set(out) == {'market/mAP_ir', 'market/mINP', 'market/Rank-1',
                        'market/Rank-3', 'market/skipped_queries'}
    ref = evaluate_features(q[:, :4].float(), g[:, :4].float(), q_pids,
                            g_pids, q_camids, g_camids, metric='euclidean',
                            ap_modes=('ir',))
    assert out['market/mAP_ir'] == pytest.approx(100 * ref.ap['ir'])
    assert out['market/Rank-3'] == pytest.approx(100 * float(ref.cmc[2]))


def test_metric_counts_and_logs_a_skipped_query(monkeypatch):
    # query 2's id has no gallery item; query 1's only hit is kept
    q = torch.eye(3)[:2]
    g = torch.eye(3)
    metric = build_metric(ranks=(1, ))
    warned = []
    logger = MMLogger.get_current_instance()
    monkeypatch.setattr(logger, 'warning', warned.append)
    feed(metric, make_samples(q, g, [1, 7], [1, 2, 0], [0, 0], [1, 1, 1]))
    out = evaluate(metric)
    assert out['reid/skipped_queries'] == 1
    assert out['reid/Rank-1'] == pytest.approx(100.0)
    assert out['reid/mAP'] == pytest.approx(100.0)
    assert len(warned) == 1 and '1 of 2 queries' in warned[0]


def test_metric_rerank():
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped(
        nq=20, ng=120, num_ids=10)
    metric = build_metric(rerank=True, k1=6, k2=3)
    feed(metric, make_samples(q, g, q_pids, g_pids, q_camids, g_camids))
    out = evaluate(metric)
    q, g = q.float(), g.float()
    dist = re_ranking(pairwise_distance(q, g), pairwise_distance(q, q),
                      pairwise_distance(g, g), k1=6, k2=3)
    ref = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
    assert out['reid/mAP'] == pytest.approx(100 * ref.ap['trapezoid'])
    assert out['reid/Rank-1'] == pytest.approx(100 * float(ref.cmc[0]))


def test_metric_errors():
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped(nq=5, ng=400)
    samples = make_samples(q, g, q_pids, g_pids, q_camids, g_camids)
    metric = build_metric(feature='pool4')
    with pytest.raises(ReIDEvalError, match=r"'pool4'.*\['embed', 'pool5'\]"):
        metric.process({}, samples[:1])
    metric = build_metric()
    bad = dict(samples[0])
    del bad['pid']
    with pytest.raises(ReIDEvalError, match="no 'pid'"):
        metric.process({}, [bad])
    metric.process({}, samples[5:])  # gallery only
    with pytest.raises(ReIDEvalError, match='0 queries'):
        evaluate(metric)
    metric = build_metric()
    metric.process({}, samples[:5])  # queries only
    with pytest.raises(ReIDEvalError, match='0 gallery items'):
        evaluate(metric)
    with pytest.raises(ValueError, match='ap_modes'):
        build_metric(ap_modes=('trapezoid', 'voc'))
    with pytest.raises(ValueError, match='metric'):
        build_metric(metric='dot')


def test_metric_draws_ranked_lists(tmp_path):
    from PIL import Image
    q, g, q_pids, g_pids, q_camids, g_camids = market_shaped(nq=6, ng=400)
    img_dir = tmp_path / 'img'
    img_dir.mkdir()
    samples = make_samples(q, g, q_pids, g_pids, q_camids, g_camids,
                           root=str(img_dir))
    for s in samples:  # one colour per id
        pid = s['pid'] % 256
        Image.new('RGB', (32, 64), (pid, 255 - pid, 128)).save(
            s['img_path'])
    show = tmp_path / 'show'
    metric = build_metric(show_dir=str(show), show_topk=5, max_show=3)
    feed(metric, samples)
    evaluate(metric)
    files = sorted(show.iterdir())
    assert [f.name[:5] for f in files] == ['0000_', '0001_', '0002_']
    # the border colours say hit (green) / miss (red), as evaluated
    query = sorted((s for s in samples if s['is_query']),
                   key=lambda s: s['img_path'])[0]
    gallery = sorted((s for s in samples if not s['is_query']),
                     key=lambda s: s['img_path'])
    gf = torch.stack([s['pred_feats']['pool5'] for s in gallery])
    dist = pairwise_distance(query['pred_feats']['pool5'][None], gf)[0]
    gp = torch.tensor([s['pid'] for s in gallery])
    gc = torch.tensor([s['camid'] for s in gallery])
    order = torch.sort(dist, stable=True).indices
    order = order[~((gp[order] == query['pid'])
                    & (gc[order] == query['camid'])) & (gp[order] != -1)]
    hits = (gp[order[:5]] == query['pid']).tolist()
    im = Image.open(files[0]).convert('RGB')
    cell, gap, pad, top = 64 + 8, 16, 4, 14
    assert im.size == (cell * 6 + gap + pad * 6, 128 + 8 + top)
    for k, hit in enumerate(hits):
        x = cell + gap + k * (cell + pad)
        assert im.getpixel((x + 1, top + 1)) == ((0, 200, 0) if hit
                                                 else (220, 0, 0))


def test_draw_ranked_list(tmp_path):
    from PIL import Image
    paths = []
    for k in range(3):
        p = tmp_path / f'{k}.png'
        Image.new('RGB', (20, 40), (50 * k, 0, 0)).save(p)
        paths.append(str(p))
    out = draw_ranked_list(paths[0], paths[1:], [True, False],
                           str(tmp_path / 'a' / 'list.png'))
    im = Image.open(out).convert('RGB')
    assert im.size == (72 * 3 + 16 + 4 * 3, 150)
    assert im.getpixel((72 + 16 + 1, 15)) == (0, 200, 0)
    assert im.getpixel((72 + 16 + 76 + 1, 15)) == (220, 0, 0)
    assert im.getpixel((72 + 16 + 20, 14 + 4 + 20)) == (50, 0, 0)


# ---- the benchmark tool ----------------------------------------------------


def test_reid_eval_benchmark_runs_tiny(tmp_path, script):
    """The benchmark in this process (``--no-memory``), then its memory
    probe, the function its child process runs, called here: no new
    interpreter (each costs about 25 s of the suite)."""
    import runpy

    import torch
    tool = osp.join(ROOT, 'tools', 'analysis_tools', 'reid_eval_benchmark.py')
    out = tmp_path / 'bench.json'
    argv = ['--num-query', '50', '--num-gallery', '300', '--dim', '16',
            '--threads', '1', '--repeats', '1', '--json', str(out)]
    threads = torch.get_num_threads()
    try:
        res = script(tool, argv + ['--no-memory'])
        assert res.returncode == 0, res.stdout + res.stderr
        assert 'ratio torchreid / ours:' in res.stdout
        assert 'agree: yes' in res.stdout
        result = json.loads(out.read_text())
        assert result['agree'] and result['max_diff_float64'] <= 1e-6
        assert result['num_query'] == 50 and result['num_gallery'] == 300
        bench = runpy.run_path(tool, run_name='reid_eval_benchmark')
        old_argv = sys.argv
        sys.argv = [tool] + argv
        try:
            args = bench['parse_args']()
        finally:
            sys.argv = old_argv

        class Box:
            def put(self, value):
                self.value = value
        box = Box()
        bench['_memory_child'](args, box)
    finally:
        torch.set_num_threads(threads)
    mem = box.value
    assert mem['peak_rss_mib'] >= mem['rss_before_mib'] > 0
    assert mem['torch_alloc_peak_mib'] >= 0

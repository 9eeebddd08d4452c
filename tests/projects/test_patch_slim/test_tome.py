# Copyright (c) EVLab contributors.
"""Token merging (ToMe), Patch Slimming's training-free comparison: the
merge by hand on a tiny case, no merging equals the dense ViT, the token
counts, proportional attention, and analytic MACs against a counter."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from projects.common.complexity import count_macs
from projects.common.errors import EVLabError
from projects.patch_slim import PatchSlimViT, model_macs
from projects.patch_slim.tome import bipartite_merge

TINY = dict(arch=dict(embed_dims=16, num_layers=4, num_heads=2,
                      feedforward_channels=32),
            img_size=32, patch_size=8)  # 17 tokens


def test_merge_by_hand():
    # tokens 0..4: A = {0, 2, 4}, B = {1, 3}; metric: 2 is parallel to 3,
    # 4 nearly parallel to 1, 0 (the class token) parallel to 1
    metric = torch.tensor([[[1., 0.], [1., 0.], [0., 1.], [0., 1.],
                            [1., 0.1]]], dtype=torch.float64)
    x = torch.arange(10, dtype=torch.float64).reshape(1, 5, 2)
    size = torch.tensor([[[1.], [1.], [1.], [2.], [1.]]],
                        dtype=torch.float64)
    out, out_size = bipartite_merge(x, size, metric, r=1)
    # the best A match is 2 -> 3 (cosine 1); 0 is protected
    # kept A in order: 0, 4; then B: 1, and 3 merged with 2 (sizes 2 + 1)
    expected = torch.tensor([[[0., 1.], [8., 9.], [2., 3.],
                              [(2 * 6 + 4) / 3, (2 * 7 + 5) / 3]]],
                            dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert out_size.flatten().tolist() == [1., 1., 1., 3.]
    out2, size2 = bipartite_merge(x, size, metric, r=2)
    # then 4 -> 1 (cosine 0.995): 0 stays, alone in A, first
    assert size2.flatten().tolist() == [1., 2., 3.]
    torch.testing.assert_close(out2[0, 1], (x[0, 1] + x[0, 4]) / 2)


def test_no_merging_is_the_dense_vit():
    dense = VisionTransformer(**TINY)
    ours = PatchSlimViT(tome_r=0, **TINY)
    ours.load_state_dict(dense.state_dict())
    dense.double().eval()
    ours.double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], dense(x)[0], rtol=0,
                                   atol=1e-10)


def test_token_counts_and_proportional_attention():
    model = PatchSlimViT(tome_r=[3, 3, 2, 0], **TINY).eval()
    seen = []
    for layer in model.layers:
        layer.ffn.register_forward_hook(
            lambda m, i, o: seen.append(o.shape[1]))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert seen == model.tome_tokens() == [14, 11, 9, 9]
    # a token of size 2 weighs as two copies of it: attention over
    # [a, b] with sizes [2, 1] equals attention over [a, a, b]
    attn = model.layers[0].attn
    h = torch.randn(1, 2, 16)
    merged = model._attention(attn, h, h, key_bias=torch.tensor(
        [[2.0, 1.0]]).log())
    copies = torch.cat([h[:, :1], h], dim=1)
    ref = model._attention(attn, h, copies)
    torch.testing.assert_close(merged, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('r', [8, 13])
def test_analytic_macs_equal_the_counter(r):
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='PatchSlimViT', arch='deit-tiny', img_size=224,
                      patch_size=16, tome_r=r),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000,
                  in_channels=192))).eval()
    x = torch.randn(1, 3, 224, 224)
    counted = count_macs(lambda: model(x))
    analytic = model_macs(model.backbone, num_classes=1000)['total']
    assert abs(counted - analytic) / analytic < 0.005, (counted, analytic)


def test_merging_and_pruning_together_is_refused():
    model = PatchSlimViT(tome_r=2, keep_indices=[list(range(17))] * 3 +
                         [[0]], **TINY)
    with pytest.raises(EVLabError, match='prunes .* or merges'):
        model(torch.randn(1, 3, 32, 32))


def test_benchmark_runs_tiny(tmp_path, capsys):
    """The benchmark tool, in this process (its figures are not checked:
    speed belongs to the benchmark run, not to a test)."""
    import importlib.util
    import json
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    spec = importlib.util.spec_from_file_location(
        'patch_slim_benchmark',
        osp.join(root, 'tools', 'analysis_tools', 'patch_slim_benchmark.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'bench.json'
    threads = torch.get_num_threads()
    try:
        tool.main(['--img-size', '64', '--schedule', '17', '17', '15', '13',
                   '11', '9', '8', '7', '5', '4', '3', '1',
                   '--batch-sizes', '1', '2', '--repeats', '1',
                   '--warmup', '0', '--threads', '1', '--json', str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert '| Patch Slimming (gathered) |' in printed
    assert 'x dense throughput' in printed
    result = json.loads(out.read_text())
    rows = result['rows']
    assert rows['dense']['macs'] > rows['Patch Slimming (gathered)']['macs']
    for row in rows.values():  # the analytic count is the counter's
        assert abs(row['macs'] - row['macs_counted']) <= 0.005 * row['macs']
        assert row['batch2']['images_per_s'] > 0

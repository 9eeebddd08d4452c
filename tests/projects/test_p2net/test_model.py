# Copyright (c) EVLab contributors.
"""P2NetReID: loss and predict, flip test-time features, the official lr
split, the head's initialisation and the optional losses."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from projects.p2net import BatchHardTripletLoss  # noqa: F401 (registers)


def tiny_model(**kwargs):
    init_default_scope('mmpretrain')
    cfg = dict(
        type='P2NetReID',
        backbone=dict(type='ResNet', depth=18, stem_channels=8,
                      base_channels=8, strides=(1, 2, 2, 1)),
        head=dict(type='P2NetClsHead', num_classes=5, in_channels=64,
                  embed_channels=16),
        dpb_stages=(2, ))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def batch(n=4, h=64, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, h, w, generator=g)
    samples = []
    for i in range(n):
        ds = DataSample().set_gt_label(i % 5)
        ds.set_field(torch.randint(0, 5, (h, w), generator=g),
                     'gt_part_map')
        samples.append(ds)
    return x, samples


def test_loss_and_predict_shapes():
    model = tiny_model()
    x, samples = batch()
    losses = model(x, samples, mode='loss')
    assert set(losses) == {'loss'} and losses['loss'].ndim == 0
    losses['loss'].backward()
    assert model.dpbs['2'].bn_human.weight.grad is not None
    model.eval()
    out = model(x, samples, mode='predict')
    assert out[0].pred_feats['pool5'].shape == (64, )
    assert out[0].pred_feats['embed'].shape == (16, )
    for ds in out:  # L2-normalised
        for v in ds.pred_feats.values():
            assert abs(float(v.norm()) - 1) < 1e-5
    assert model(x, samples).shape == (4, 5)  # tensor mode: logits


def test_new_model_equals_the_baseline_at_initialisation():
    """The DPB starts as the identity: with the same backbone and head
    weights, P2Net and the baseline give the same features."""
    torch.manual_seed(0)
    p2 = tiny_model().eval()
    base = tiny_model(dpb_stages=(), use_latent=False, use_human=False)
    base.load_state_dict(p2.state_dict(), strict=False)
    base.eval()
    x, samples = batch()
    a = p2.predict(x, samples)
    b = base.predict(x, samples)
    for u, v in zip(a, b):
        assert torch.equal(u.pred_feats['pool5'], v.pred_feats['pool5'])


def test_flip_features_are_the_sum_of_both_views():
    model = tiny_model().eval()
    # make the block matter, so that the part map's flip matters too
    for bn in (model.dpbs['2'].bn_latent, model.dpbs['2'].bn_human):
        torch.nn.init.normal_(bn.weight)
    x, samples = batch()
    maps = torch.stack([s.gt_part_map for s in samples])
    with torch.no_grad():
        out = model.predict(x, samples)
        a = model.features(x, maps)
        b = model.features(x.flip(-1), maps.flip(-1))
        wrong = model.features(x.flip(-1), maps)
    for k in ('pool5', 'embed'):
        want = F.normalize(a[k] + b[k], dim=1)
        got = torch.stack([s.pred_feats[k] for s in out])
        torch.testing.assert_close(got, want)
        bad = F.normalize(a[k] + wrong[k], dim=1)
        assert not torch.allclose(got, bad, atol=1e-4)
    model.test_cfg['flip'] = False
    with torch.no_grad():
        plain = model.predict(x, samples)
    torch.testing.assert_close(plain[0].pred_feats['pool5'],
                               F.normalize(a['pool5'], dim=1)[0])


def test_official_lr_split():
    model = tiny_model()
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True,
                       weight_decay=5e-4),
        paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})))
    lr = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            lr[id(p)] = group['lr']
    for name, p in model.named_parameters():
        want = 0.01 if name.startswith('backbone.') else 0.1
        assert lr[id(p)] == pytest.approx(want), name
    assert any(n.startswith('dpbs.') for n, _ in model.named_parameters())


def test_head_initialisation_follows_the_official_code():
    torch.manual_seed(0)
    head = tiny_model(dpb_stages=(), use_human=False).head
    assert torch.equal(head.fc_embed.bias, torch.zeros(16))
    assert torch.equal(head.fc_cls.bias, torch.zeros(5))
    assert float(head.fc_cls.weight.std()) < 0.002
    assert float((head.bn_embed.weight - 1).abs().max()) < 0.1
    # Kaiming fan_out on (256, 2048): std sqrt(2 / out_features)
    assert float(head.fc_embed.weight.std()) == pytest.approx(
        (2 / 16) ** 0.5, rel=0.15)


def test_missing_part_maps_and_bad_labels_are_named():
    model = tiny_model()
    x, samples = batch()
    for s in samples:
        del s.gt_part_map
    with pytest.raises(ValueError, match='gt_part_map'):
        model(x, samples, mode='loss')
    x, samples = batch()
    with pytest.raises(ValueError, match='resize image and map'):
        model(x[..., :16], samples, mode='loss')
    x, samples = batch()
    samples[0].set_gt_label(9)
    with pytest.raises(ValueError, match='num_classes=5'):
        model(x, samples, mode='loss')
    with pytest.raises(ValueError, match='dpb_stages'):
        tiny_model(dpb_stages=(3, ))


def test_batch_hard_triplet_equals_the_hand_value():
    loss = BatchHardTripletLoss(margin=0.3)
    feats = torch.tensor([[0., 0.], [1., 0.], [0., 2.], [0., 2.5]])
    labels = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest positive 1.0, nearest negative 2.0 -> 0
    # anchor 1: 1.0 vs sqrt(5) -> 0; anchor 2: 0.5 vs 2.0 -> 0
    # anchor 3: 0.5 vs 2.5 -> 0; shrink the margin test: margin 1.2
    assert float(loss(feats, labels)) == pytest.approx(0.0)
    loss.margin = 1.2
    want = (max(0, 1 - 2 + 1.2) + max(0, 1 - 5 ** 0.5 + 1.2) +
            max(0, 0.5 - 2 + 1.2) + max(0, 0.5 - 2.5 + 1.2)) / 4
    assert float(loss(feats, labels)) == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match='PKSampler'):
        loss(feats, torch.arange(4))


def test_optional_losses_through_the_head():
    model = tiny_model(head=dict(
        type='P2NetClsHead', num_classes=5, in_channels=64,
        embed_channels=16,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        triplet_loss=dict(type='BatchHardTripletLoss', margin=0.3)))
    x, samples = batch(n=6)
    losses = model(x, samples, mode='loss')
    assert set(losses) == {'loss', 'loss_triplet'}
    assert all(torch.isfinite(v) for v in losses.values())

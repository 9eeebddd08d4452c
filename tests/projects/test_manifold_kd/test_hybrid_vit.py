# Copyright (c) EVLab contributors.
"""HybridVisionTransformer: a CNN patch embedding in front of mmpretrain's
VisionTransformer (the toy manifold-KD teacher and student)."""
import pytest
import torch
from mmengine.registry import init_default_scope


def cnn(base=8):
    return dict(type='ResNet', depth=18, num_stages=3, out_indices=(2, ),
                strides=(1, 2, 2), dilations=(1, 1, 1),
                base_channels=base, stem_channels=base)


def build(**kwargs):
    from mmpretrain.registry import MODELS

    import projects.manifold_kd  # noqa: F401  (registers)
    init_default_scope('mmpretrain')
    cfg = dict(type='HybridVisionTransformer', cnn=cnn(),
               arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                         feedforward_channels=64),
               img_size=64, patch_size=16, init_cfg=None)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_tokens_come_from_the_cnn_and_feed_the_encoder():
    torch.manual_seed(0)
    model = build(out_type='raw')
    x = torch.randn(2, 3, 64, 64)
    # the CNN (stride 16) gives the 4x4 token grid of patch 16 at 64 px
    feats = model.patch_embed.backbone(x)[-1]
    assert feats.shape == (2, 32, 4, 4)  # ResNet-18 stage 3, base 8
    tokens, hw = model.patch_embed(x)
    assert hw == (4, 4) and tokens.shape == (2, 16, 32)
    expected = model.patch_embed.projection(feats).flatten(2).transpose(1, 2)
    assert torch.allclose(tokens, expected)
    out = model(x)[-1]
    assert out.shape == (2, 17, 32)  # class token + 16 patch tokens
    # the class-token output (default) and a gradient into the CNN
    model = build()
    cls = model(x)[-1]
    assert cls.shape == (2, 32)
    # (a plain sum of a LayerNorm output has zero gradient)
    (cls * torch.randn_like(cls)).sum().backward()
    stem_grad = model.patch_embed.backbone.conv1.weight.grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0


def test_other_input_size_interpolates_position_embeddings():
    model = build()
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 96))[-1]
    assert out.shape == (1, 32)


def test_probe_leaves_batchnorm_statistics_untouched():
    model = build()
    bn = model.patch_embed.backbone.bn1
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert int(bn.num_batches_tracked) == 0


def test_patch_size_must_equal_the_cnn_stride():
    with pytest.raises(ValueError, match=r'patch_size=8 needs 8x8'):
        build(patch_size=8)

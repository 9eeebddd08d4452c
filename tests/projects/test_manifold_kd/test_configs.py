# Copyright (c) EVLab contributors.
"""The ImageNet configs: DeiT-Tiny student and CaiT-S24 teacher (timm,
no weights) build on CPU, the hooked blocks give the spec's token shapes,
and the weights keep the paper's names (no alpha / beta)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

IN1K = ('deit-tiny_8xb64_in1k.py', 'deit-tiny_cait-s24_manifold_8xb64_in1k.py',
        'deit-tiny_cait-s24_softkd_8xb64_in1k.py')


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _keys(v)


@pytest.mark.parametrize('name', IN1K + ('toy_vit_student.py',
                                         'toy_vit_teacher.py',
                                         'toy_vit_manifold.py',
                                         'toy_vit_softkd.py'))
def test_config_sanity(configs_dir, name):
    cfg = Config.fromfile(osp.join(configs_dir, name))
    assert cfg.default_scope == 'mmpretrain'
    # the distiller's own keys (Mixup's `alpha` inside the student is
    # mmpretrain's): no ambiguous alpha/beta weights
    if cfg.model.type == 'ManifoldKDClassifier':
        own = {k: v for k, v in cfg.to_dict()['model'].items()
               if k not in ('student', 'teacher')}
        assert {'gt_weight', 'kd_weight', 'mf_weight', 'w_intra', 'w_inter',
                'w_rand', 'num_rand_rows', 'layer_pairs'} <= set(own)
        assert not {'alpha', 'beta'} & set(_keys(own))
    if name.startswith('deit-tiny'):
        # the per-GPU batch is part of the method (inter-image term)
        assert cfg.train_dataloader.batch_size == 64
        assert cfg.auto_scale_lr.base_batch_size == 512
        assert cfg.train_cfg.max_epochs == 300
    if 'cait' in name:
        m = cfg.model
        assert m.teacher.model_name == 'cait_s24_224'
        assert not m.teacher.pretrained and m.teacher_ckpt
        assert (m.gt_weight, m.kd_weight, m.temperature) == (0., 1., 1.)
        assert m.mf_weight == (0. if 'softkd' in name else 1.)
        assert (m.w_intra, m.w_inter, m.w_rand, m.num_rand_rows) == (
            4., 0.1, 0.2, 192)
        assert [p[1] for p in m.layer_pairs] == [
            f'model.blocks.{i}' for i in (0, 1, 2, 3, 20, 21, 22, 23)]


def test_imagenet_distiller_builds_with_a_timm_cait_teacher(configs_dir,
                                                            monkeypatch):
    import timm
    from mmpretrain.registry import MODELS

    import projects.manifold_kd  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(configs_dir, IN1K[1]))
    model = MODELS.build(cfg.model)  # no teacher weights at build time
    teacher = model.teacher.model
    assert type(teacher).__name__ == 'Cait'
    assert teacher.global_pool == 'token'
    assert not any(p.requires_grad for p in teacher.parameters())
    n_student = sum(p.numel() for p in model.student.parameters())
    ref = timm.create_model('deit_tiny_patch16_224', pretrained=False)
    assert n_student == sum(p.numel() for p in ref.parameters())
    assert n_student == 5_717_416

    model.train()
    x = torch.randn(2, 3, 224, 224)
    logits, feats = model.teacher_forward(x)
    assert logits.shape == (2, 1000)
    assert [tuple(f.shape) for f in feats] == [(2, 196, 384)] * 8
    with torch.no_grad():  # the wrapper adds nothing to timm's model
        assert torch.equal(logits, teacher(x))
    # the teacher runs once per test: reuse its outputs for the loss
    monkeypatch.setattr(model, 'teacher_forward', lambda inputs: (logits,
                                                                  feats))
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i) for i in range(2)]
    losses = model(x, samples, mode='loss')
    # released recipe: no CE term; 197 student tokens vs 196 ('auto')
    assert set(losses) == {'loss_kd', 'loss_mf_intra', 'loss_mf_inter',
                           'loss_mf_rand'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_toy_teacher_cnn_starts_from_the_resnet_baseline(configs_dir,
                                                         tmp_path):
    """The hybrid teacher's CNN embedding loads stages 1-3 of the toy
    ResNet-18 baseline (prefix ``backbone.``); the encoder stays random."""
    from mmpretrain.registry import MODELS

    import projects.manifold_kd  # noqa: F401
    init_default_scope('mmpretrain')
    root = osp.dirname(osp.dirname(configs_dir))
    base = Config.fromfile(osp.join(root, 'configs', 'baselines',
                                    'resnet18_toy_cls.py'))
    torch.manual_seed(0)
    resnet = MODELS.build(base.model)
    ckpt = tmp_path / 'resnet.pth'
    torch.save({'state_dict': resnet.state_dict()}, ckpt)
    cfg = Config.fromfile(osp.join(configs_dir, 'toy_vit_teacher.py'))
    assert cfg.model.backbone.cnn.init_cfg.checkpoint == \
        'work_dirs/resnet18_toy_cls/epoch_15.pth'
    cfg.model.backbone.cnn.init_cfg.checkpoint = str(ckpt)
    teacher = MODELS.build(cfg.model)
    teacher.init_weights()
    cnn = teacher.backbone.patch_embed.backbone.state_dict()
    ref = resnet.backbone.state_dict()
    assert cnn and all(torch.equal(v, ref[k]) for k, v in cnn.items())
    assert teacher(torch.randn(1, 3, 64, 64)).shape == (1, 10)

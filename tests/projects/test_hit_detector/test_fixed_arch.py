# Copyright (c) EVLab contributors.
"""The released Hit-Detector (spec 2.2 / 3.2): parameter counts, shapes,
genotype checks and the checkpoint converter."""
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from projects.common.complexity import count_params
from projects.common.errors import EVLabError
from projects.hit_detector import (
    HIT_NECK,
    NECK_OPS,
    HitBackbone,
    HitBBoxHead,
    HitPAFPN,
    check_genotype,
)
from projects.hit_detector.convert import convert_official

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
BN = dict(type='BN')

# spec 3.2, derived from the op definitions (BN affine parameters counted)
SPEC = dict(backbone=13_881_832, neck=2_715_952, rpn_head=593_935,
            roi_head=9_930_129, total=27_121_848)
STEM_BIAS = 16  # the released stem conv has a bias (FBNet.build_backbone)


@pytest.fixture(scope='module')
def detector():
    register_all_modules()
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/hit_detector/hitdet_faster-rcnn_1x_coco.py'))
    cfg.model.backbone.init_cfg = None
    for part in (cfg.model.backbone, cfg.model.neck,
                 cfg.model.roi_head.bbox_head):
        part.norm_cfg = BN  # SyncBN needs a process group to run
    return MODELS.build(cfg.model)


def test_released_parameter_counts(detector):
    counts = {k: count_params(getattr(detector, k))
              for k in ('backbone', 'neck', 'rpn_head', 'roi_head')}
    assert counts['backbone'] == SPEC['backbone'] + STEM_BIAS
    for k in ('neck', 'rpn_head', 'roi_head'):
        assert counts[k] == SPEC[k], k
    assert count_params(detector) == SPEC['total'] + STEM_BIAS
    # without the stem bias: the spec's figure exactly
    assert count_params(HitBackbone(stem_bias=False)) == SPEC['backbone']
    head = detector.roi_head.bbox_head
    assert count_params(head.blocks) == 3_301_376
    assert count_params(head.shared_fcs) == 6_423_040
    assert (count_params(head.fc_cls) + count_params(head.fc_reg)
            == 205_713)
    assert count_params(detector.neck.pa_convs) == 1_770_240


def test_released_shapes(detector):
    detector.eval()
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        feats = detector.backbone(x)
        assert [tuple(f.shape[1:]) for f in feats] == [
            (48, 32, 24), (96, 16, 12), (256, 8, 6), (2048, 4, 3)]
        outs = detector.neck(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [
        (256, 32, 24), (256, 16, 12), (256, 8, 6), (256, 4, 3),
        (256, 2, 2)]
    rois = torch.randn(3, 256, 7, 7)  # the fixture set mmdet's scope
    cls, reg = detector.roi_head.bbox_head(rois)
    assert cls.shape == (3, 81) and reg.shape == (3, 320)


def test_released_genotypes():
    assert HIT_NECK == ('sd_k5_d3', 'sd_k5_d3', 'sd_k5_d2', 'sd_k3_d3',
                        'sd_k3_d3', 'sd_k5_d3', 'sd_k5_d3', 'sd_k3_d3')
    neck = HitPAFPN([48, 96, 256, 2048], genotype=[7, 7, 6, 5, 5, 7, 7, 5])
    assert neck.genotype == list(HIT_NECK)
    b = HitBackbone()
    assert [b.layers[i].spec.name for i in (3, 11, 14)] == [
        'ir_k3_e3_d2', 'ir_k5_e6_d2', 'ir_k5_e6_d2']
    assert b.layers[3].conv2.conv.dilation == (2, 2)
    assert b.channels == [48, 96, 256, 2048]
    assert HitBackbone(widen_factor=0.25).channels == [16, 24, 64, 512]


@pytest.mark.parametrize('genotype, match', [
    (list(HIT_NECK)[:7], 'has 7 ops; its 8 positions'),
    ([8] + [0] * 7, 'position 0: gene 8 indexes no op'),
    (['ir_k9_e6x'] + ['conv_1x1'] * 7, 'position 0: unknown op'),
])
def test_bad_neck_genotypes(genotype, match):
    with pytest.raises(ValueError, match=match):
        HitPAFPN([8, 8, 8, 8], 8, genotype=genotype)


def test_genotype_outside_the_sub_space():
    with pytest.raises(ValueError, match="head position 1: op 'ir_k7_e6' "
                                         'is not in the head sub-space'):
        check_genotype(['ir_k3_e3', 'ir_k7_e6'], 2, 'head',
                       allowed=['ir_k3_e3', 'ir_k5_e6'])
    assert check_genotype(['ir_k3_e6_r2'], 1, 'head',
                          allowed=['ir_k3_e6_d2']) == ['ir_k3_e6_d2']
    assert check_genotype([0, 4], 2, 'neck', NECK_OPS) == [
        'conv_1x1', 'sd_k3_d1']


def test_box_head_refuses_avg_pool():
    register_all_modules()  # the bbox coder comes from mmdet's registry
    with pytest.raises(ValueError, match='with_avg_pool'):
        HitBBoxHead(with_avg_pool=True, in_channels=8, num_classes=2)


def test_converter_maps_the_released_layout():
    """A synthetic checkpoint in the released key layout (``module.``
    prefix, ``layers.{i}.conv1.conv.weight``, a classifier) maps onto our
    backbone with no missing or unexpected key."""
    ref = HitBackbone().state_dict()
    official = {'module.' + k: torch.randn(v.shape) if v.is_floating_point()
                else v.clone() for k, v in ref.items()}
    assert 'module.layers.1.conv1.conv.weight' in official
    assert 'module.layers.0.conv.bias' in official
    official['module.fc.weight'] = torch.randn(1000, 2048)
    official['module.fc.bias'] = torch.randn(1000)
    out = convert_official(official)
    backbone = HitBackbone()
    result = backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in out.items()
         if k.startswith('backbone.')}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(backbone.layers[5].conv2.conv.weight,
                       official['module.layers.5.conv2.conv.weight'])
    assert out['head.fc.weight'].shape == (1000, 2048)


def test_converter_refuses_another_network():
    bad = HitBackbone(widen_factor=0.5).state_dict()
    with pytest.raises(EVLabError, match='of another shape'):
        convert_official(bad)
    bad = dict(HitBackbone().state_dict())
    bad.pop('layers.22.conv.weight')
    with pytest.raises(EVLabError, match=r"1 missing \(e.g. \['layers.22"):
        convert_official(bad)

# Copyright (c) EVLab contributors.
"""GhostNet: parity with timm (in float64, so it holds whatever kernels a
CPU picks), the paper's params/MACs, feature maps, frozen stages,
registry."""
import pytest
import timm
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

import projects.ghostnet  # noqa: F401  (registers)
from projects.common.complexity import count_conv_linear_macs, count_params
from projects.ghostnet import GhostNet, convert_official, make_divisible

WIDTHS = {0.5: 'ghostnet_050', 1.0: 'ghostnet_100', 1.3: 'ghostnet_130'}
# paper Table 7 (params, MACs); MACs counted over conv + linear layers
PAPER = {0.5: (2.6e6, 42e6), 1.0: (5.2e6, 141e6), 1.3: (7.3e6, 226e6)}
# the conv + linear MACs of the layer table (spec, derived by hand)
TABLE_MACS = {0.5: 42.3e6, 1.0: 141.2e6, 1.3: 227.0e6}


def build_classifier(width: float, num_classes: int = 1000) -> nn.Module:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='GhostNet', widen_factor=width),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='StackedLinearClsHead', num_classes=num_classes,
                  in_channels=make_divisible(960 * width, 4),
                  mid_channels=[1280], dropout_rate=0.2, norm_cfg=None,
                  act_cfg=dict(type='ReLU'))))


def assert_close64(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float64 rounding: 1e-10 of the largest magnitude."""
    assert actual.dtype == expected.dtype == torch.float64
    scale = max(float(expected.abs().max()), 1.0)
    torch.testing.assert_close(actual, expected, rtol=1e-9,
                               atol=1e-10 * scale)


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Random weights and BN statistics, so no mapping error hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features,
                                                 generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features,
                                               generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize('width', sorted(WIDTHS))
def test_logits_equal_timm_with_converted_weights(width):
    ref = timm.create_model(WIDTHS[width], pretrained=False)
    randomise(ref)
    ref.eval()
    ours = build_classifier(width)
    missing, unexpected = ours.load_state_dict(
        convert_official(ref.state_dict()), strict=True)
    assert not missing and not unexpected
    ours.double().eval()
    ref.double()
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(x)
        logits = ours(x, mode='tensor')
        feats = ours.backbone(x)[-1]
        ref_feats = ref.forward_features(x)
    assert expected.abs().max() > 0.1  # a non-degenerate comparison
    assert_close64(feats, ref_feats)
    assert_close64(logits, expected)


@pytest.mark.parametrize('width', sorted(WIDTHS))
def test_params_and_macs_match_paper(width):
    ours = build_classifier(width)
    ref = timm.create_model(WIDTHS[width], pretrained=False)
    n_ours = count_params(ours)
    assert n_ours == count_params(ref)
    paper_params, paper_macs = PAPER[width]
    assert abs(n_ours - paper_params) / paper_params < 0.02
    macs = count_conv_linear_macs(ours, [torch.zeros(1, 3, 224, 224)])
    assert abs(macs - TABLE_MACS[width]) / TABLE_MACS[width] < 0.005
    assert abs(macs - paper_macs) / paper_macs < 0.01


def test_official_key_names_convert_without_leftovers():
    ref = timm.create_model('ghostnet_100', pretrained=False)
    official = {'module.' + k: v for k, v in ref.state_dict().items()}
    ours = build_classifier(1.0)
    converted = convert_official(official)
    assert set(converted) == set(ours.state_dict())
    assert converted['head.layers.0.fc.weight'].shape == (1280, 960)


@pytest.mark.parametrize('width', [0.5, 1.0, 1.3, 0.75])
@pytest.mark.parametrize('size', [224, 64])
def test_dense_outputs_strides_and_channels(width, size):
    net = GhostNet(widen_factor=width, out_indices=(2, 4, 6, 9))
    net.eval()
    with torch.no_grad():
        outs = net(torch.zeros(1, 3, size, size))
    channels = [make_divisible(c * width, 4) for c in (24, 40, 112, 960)]
    for out, stride, c in zip(outs, (4, 8, 16, 32), channels):
        assert out.shape == (1, c, -(-size // stride), -(-size // stride))


def test_frozen_stages_get_no_gradient_and_keep_bn_stats():
    net = GhostNet(widen_factor=0.5, frozen_stages=3)
    net.train()
    frozen = [net.conv_stem, net.bn1] + [net.blocks[i] for i in range(3)]
    bn = net.blocks[1][0].ghost1.primary_conv[1]
    stats = bn.running_mean.clone()
    assert not bn.training
    net(torch.randn(2, 3, 64, 64))[-1].sum().backward()
    for module in frozen:
        for p in module.parameters():
            assert not p.requires_grad and p.grad is None
    assert torch.equal(bn.running_mean, stats)
    assert net.blocks[3][0].ghost1.primary_conv[0].weight.grad is not None


def test_norm_eval_keeps_every_bn_in_eval():
    net = GhostNet(widen_factor=0.5, norm_eval=True).train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='out_indices'):
        GhostNet(out_indices=(10, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        GhostNet(frozen_stages=11)


def test_registered_in_mmpretrain_and_usable_from_mmdet():
    from mmdet.registry import MODELS as DET_MODELS
    from mmpretrain.registry import MODELS
    assert MODELS.get('GhostNet') is GhostNet
    init_default_scope('mmdet')
    net = DET_MODELS.build(dict(type='mmpretrain.GhostNet',
                                widen_factor=0.5, out_indices=(4, 6, 9)))
    assert isinstance(net, GhostNet)


def test_ghost_module_keeps_the_channel_cut():
    from projects.ghostnet import GhostModule
    m = GhostModule(8, 10, ratio=3)  # ceil(10 / 3) * 3 = 12 > 10
    assert m(torch.randn(1, 8, 5, 5)).shape == (1, 10, 5, 5)


@pytest.mark.parametrize('config', [
    'configs/ghostnet/retinanet_ghostnet-1.0x_fpn_1x_coco.py',
    'configs/ghostnet/retinanet_ghostnet-1.0x_toy_det.py',
])
def test_detection_config_runs_forward_and_loss(config):
    import os.path as osp

    from mmdet.registry import MODELS as DET_MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.structures import InstanceData
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(root, config))
    init_default_scope('mmdet')
    model = DET_MODELS.build(cfg.model)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128),
                                         pad_shape=(128, 128),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[10., 20., 60., 90.]]),
        labels=torch.tensor([1]))
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8)],
             data_samples=[sample]), training=True)
    losses = model(**data, mode='loss')
    total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    # gradients reach the (unfrozen) backbone through the FPN
    assert model.backbone.blocks[5][0].ghost1.primary_conv[0].weight.grad \
        is not None
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(
            dict(inputs=[torch.zeros(3, 128, 128, dtype=torch.uint8)],
                 data_samples=[sample]), False), mode='predict')
    assert len(out) == 1 and 'bboxes' in out[0].pred_instances


def test_converter_tool_writes_a_loadable_checkpoint(tmp_path, script):
    import os.path as osp

    from projects.common.checkpoint import safe_load
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    ref = timm.create_model('ghostnet_050', pretrained=False)
    randomise(ref, seed=3)
    src, dst = tmp_path / 'official.pth', tmp_path / 'evlab.pth'
    torch.save(ref.state_dict(), src)
    res = script(osp.join(root, 'tools/model_converters/ghostnet_to_evlab.py'),
                 [str(src), str(dst)])
    assert res.returncode == 0, res.stderr
    ours = build_classifier(0.5)
    ours.load_state_dict(safe_load(dst)['state_dict'], strict=True)
    ours.double().eval()
    ref.double().eval()
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        assert_close64(ours(x, mode='tensor'), ref(x))

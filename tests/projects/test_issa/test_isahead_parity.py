# Copyright (c) EVLab contributors.
"""ISSAHead equals mmseg's ISAHead with its weights copied (strict load):
eval outputs, train-mode outputs (BN batch statistics) and input
gradients; whole ISANet models from the two configs."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

import projects.issa  # noqa: F401  (registers)
from projects.issa import ISSAHead

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
KW = dict(in_channels=32, channels=16, isa_channels=8, num_classes=5,
          norm_cfg=dict(type='BN'), dropout_ratio=0.0)
SIZES = [(16, 16), (13, 11), (7, 9), (1, 1)]
FACTORS = [(4, 4), (8, 8), (3, 5)]


def randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)


def pair(down_factor):
    from mmseg.models.decode_heads import ISAHead
    init_default_scope('mmseg')
    torch.manual_seed(0)
    ref = ISAHead(down_factor=down_factor, **KW)
    randomise_bn(ref)
    torch.manual_seed(1)  # different init, so the copy is what matches
    ours = ISSAHead(down_factor=down_factor, **KW)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=True)
    assert not missing and not unexpected
    return ref, ours


@pytest.mark.parametrize('down_factor', FACTORS)
def test_eval_train_and_gradients_equal_mmseg(down_factor):
    ref, ours = pair(down_factor)
    for h, w in SIZES:
        x = torch.randn(2, 32, h, w, generator=torch.Generator()
                        .manual_seed(h * 100 + w))
        ref.eval()
        ours.eval()
        with torch.no_grad():
            torch.testing.assert_close(ours([x]), ref([x]), atol=1e-5,
                                       rtol=1e-4)
        ref.train()
        ours.train()
        xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_r, out_o = ref([xr]), ours([xo])
        torch.testing.assert_close(out_o, out_r, atol=1e-5, rtol=1e-4)
        out_r.sum().backward()
        out_o.sum().backward()
        torch.testing.assert_close(xo.grad, xr.grad, atol=1e-5, rtol=1e-4)
        # the copy is what makes them equal: weights of ours differ at init
    fresh = ISSAHead(down_factor=down_factor, **KW).eval()
    ref.eval()
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(fresh([x]), ref([x]), atol=1e-3)


def test_state_dict_layout_is_mmseg_s():
    ref, ours = pair((8, 8))
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name in ('in_conv', 'global_relation.query_project',
                 'global_relation.key_project',
                 'global_relation.value_project',
                 'global_relation.output_project', 'local_relation',
                 'out_conv', 'conv_seg'):
        assert any(k.startswith(name + '.') for k in ours.state_dict())


def test_whole_isanet_from_the_configs_equals_mmseg_s():
    """Our Cityscapes config vs mmseg's: same keys and shapes (an mmseg
    checkpoint loads strictly) and the same logits with copied weights."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    models = []
    import mmseg
    name = 'r50-d8_4xb2-40k_cityscapes-512x1024.py'
    for path in (osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                          'isanet', 'isanet_' + name),
                 osp.join(ROOT, 'configs', 'issa', 'issa_' + name)):
        cfg = Config.fromfile(path)
        cfg.model.pretrained = None
        for key in ('backbone', 'decode_head', 'auxiliary_head'):
            cfg.model[key].norm_cfg = dict(type='BN', requires_grad=True)
        models.append(MODELS.build(cfg.model))
    ref, ours = models
    assert type(ours.decode_head).__name__ == 'ISSAHead'
    assert type(ref.decode_head).__name__ == 'ISAHead'
    randomise_bn(ref, seed=2)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()
    ours.eval()
    x = torch.randn(1, 3, 64, 96)  # 8x12 C5 map: padded to 8x16
    with torch.no_grad():
        torch.testing.assert_close(ours(x, mode='tensor'),
                                   ref(x, mode='tensor'), atol=1e-5,
                                   rtol=1e-4)

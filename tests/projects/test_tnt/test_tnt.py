# Copyright (c) EVLab contributors.
"""TNT: parity with timm (both structures) and mmpretrain's TNT through the
converters (in float64, so it holds whatever kernels a CPU picks), the
paper's params / MACs, shapes of every setting, interpolated position
embeddings, gradients, freezing, registry, tool."""
import inspect
import os.path as osp
from typing import Callable, Optional

import pytest
import timm
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from timm.models import tnt as timm_tnt

import projects.tnt  # noqa: F401  (registers)
from projects.common.complexity import count_macs, count_params
from projects.tnt import (
    ARCH_SETTINGS,
    TransformerInTransformer,
    convert_mmpretrain,
    convert_official,
    convert_timm,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
# timm >= 1.0.16 names the official structure tnt_s_patch16_224 and has the
# `legacy` switch; older timm would compare against the wrong structure
assert 'legacy' in inspect.signature(timm_tnt.TNT).parameters, \
    'tests need timm >= 1.0.16'

TINY = dict(inner_dims=12, inner_heads=2, embed_dims=48, num_heads=3,
            depth=2)
# paper Table 1 (params, FLOPs = MACs) and the official README
PAPER = {'ti': (6.1e6, 1.4e9), 's': (23.8e6, 5.2e9), 'b': (65.6e6, 14.1e9)}


def build_classifier(arch, structure='official', num_classes=1000,
                     **kwargs) -> nn.Module:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    dims = (ARCH_SETTINGS[arch] if isinstance(arch, str) else
            arch)['embed_dims']
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TransformerInTransformer', arch=arch,
                      structure=structure, **kwargs),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=dims)))


def timm_model(arch, structure='official', **kwargs) -> nn.Module:
    """timm's TNT with the settings of ``arch`` (Ti has no timm entry)."""
    a = ARCH_SETTINGS[arch] if isinstance(arch, str) else arch
    return timm_tnt.TNT(
        embed_dim=a['embed_dims'], inner_dim=a['inner_dims'],
        depth=a['depth'], num_heads_inner=a['inner_heads'],
        num_heads_outer=a['num_heads'], legacy=structure == 'legacy',
        **kwargs)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random LayerNorm affines, biases, cls token and position embeddings
    (all zero / one at init), so that no mapping error hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 or 'pos' in name or 'cls_token' in name:
                base = 1. if (p.ndim == 1 and name.endswith('weight')) \
                    else 0.
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


def images(n=2, size=224, seed=1) -> torch.Tensor:
    return torch.randn(n, 3, size, size,
                       generator=torch.Generator().manual_seed(seed))


def assert_same_logits(ours: nn.Module, ref: nn.Module, x: torch.Tensor,
                       ref_fn: Optional[Callable] = None) -> None:
    """``ours(x)`` equals ``ref_fn(x)`` (``ref(x)`` by default) up to
    float64 rounding: both models are converted to float64 in place."""
    ours.double()
    ref.double()
    x = x.double()
    with torch.no_grad():
        expected = (ref_fn or ref)(x)
        logits = ours(x, mode='tensor')
    assert expected.dtype == logits.dtype == torch.float64
    scale = max(float(expected.abs().max()), 1.0)
    torch.testing.assert_close(logits, expected, rtol=1e-9,
                               atol=1e-10 * scale)


@pytest.mark.parametrize('name,arch,structure,size', [
    ('tnt_s_patch16_224', 's', 'official', 224),
    ('tnt_s_legacy_patch16_224', 's', 'legacy', 64),
    ('tnt_b_patch16_224', 'b', 'official', 64),
])
def test_logits_equal_timm(name, arch, structure, size):
    # full widths and depth; 64x64 inputs (16 patches) keep the CPU time
    # small where the full 224 case is covered once
    ref = randomise(timm.create_model(name, pretrained=False,
                                      img_size=size))
    ours = build_classifier(arch, structure, img_size=size)
    ours.load_state_dict(convert_timm(ref.state_dict()), strict=True)
    ours.eval()
    assert count_params(ours) == count_params(ref)
    assert_same_logits(ours, ref, images(2, size))


@pytest.mark.parametrize('structure', ['official', 'legacy'])
def test_tnt_ti_logits_equal_timm_tnt_class(structure):
    ref = randomise(timm_model('ti', structure, img_size=64), seed=2)
    ours = build_classifier('ti', structure, img_size=64)
    ours.load_state_dict(convert_timm(ref.state_dict()), strict=True)
    ours.eval()
    assert count_params(ours) == count_params(ref)
    assert_same_logits(ours, ref, images(2, 64))


def test_legacy_logits_equal_mmpretrain_tnt():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    ref = randomise(MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='TNT', arch='s', img_size=64),
        head=dict(type='LinearClsHead', num_classes=1000,
                  in_channels=384))), seed=3)
    converted = convert_mmpretrain(ref.state_dict())
    ours = build_classifier('s', 'legacy', img_size=64)
    ours.load_state_dict(converted, strict=True)
    ours.eval()
    # the qkv split: q and k rows go to qk, v rows to v
    in_proj = ref.state_dict()['backbone.layers.3.outer_block.attn.attn.'
                               'in_proj_weight']
    torch.testing.assert_close(
        converted['backbone.blocks.3.attn_out.v.weight'], in_proj[768:])
    assert_same_logits(ours, ref, images(2, 64),
                       lambda x: ref(x, mode='tensor'))


#: official Efficient-AI-Backbones names of a block and the stem, written
#: from the release (tnt_pytorch/tnt.py), to map onto timm's / ours
OFFICIAL_BLOCK = {
    'inner_norm1': 'norm_in', 'inner_attn': 'attn_in',
    'inner_norm2': 'norm_mlp_in', 'inner_mlp': 'mlp_in',
    'proj_norm1': 'norm1_proj', 'proj': 'proj', 'proj_norm2': 'norm2_proj',
    'outer_norm1': 'norm_out', 'outer_attn': 'attn_out',
    'outer_norm2': 'norm_mlp', 'outer_mlp': 'mlp',
}


def official_state_dict(ref: nn.Module) -> dict:
    """A synthetic official checkpoint holding ``ref``'s (timm) weights."""
    back = {v: k for k, v in OFFICIAL_BLOCK.items()}
    out = {}
    for key, value in ref.state_dict().items():
        parts = key.split('.')
        if key == 'patch_pos':
            out['outer_pos'] = value
        elif key == 'pixel_pos':
            # (1, c, 4, 4) -> (1, 16, c), the official inner_pos
            out['inner_pos'] = value.flatten(2).transpose(1, 2).clone()
        elif parts[0] == 'pixel_embed':
            out['patch_embed.' + '.'.join(parts[1:])] = value
        elif parts[0] == 'blocks':
            out['.'.join(parts[:2] + [back[parts[2]]] + parts[3:])] = value
        elif parts[0] in back and parts[0] != 'proj':
            out['.'.join([back[parts[0]]] + parts[1:])] = value
        else:
            out[key] = value  # cls_token, proj, norm, head
    n, d = ref.patch_pos.shape[1] - 1, ref.patch_pos.shape[2]
    out['outer_tokens'] = torch.zeros(1, n, d)  # unused frozen parameter
    return {'module.' + k: v for k, v in out.items()}


def test_official_checkpoint_converts_exactly():
    ref = randomise(timm_model(TINY, img_size=64), seed=4)
    official = official_state_dict(ref)
    assert 'module.blocks.1.inner_attn.qk.weight' in official
    assert official['module.inner_pos'].shape == (1, 16, 12)
    converted = convert_official(official)
    ours = build_classifier(TINY, img_size=64)
    assert set(converted) == set(ours.state_dict())
    ours.load_state_dict(converted, strict=True)
    ours.eval()
    # timm's own filter for official checkpoints is an independent reader
    ref2 = timm_model(TINY, img_size=64).eval()
    plain = {k[len('module.'):]: v for k, v in official.items()}
    ref2.load_state_dict(timm_tnt.checkpoint_filter_fn(plain, ref2))
    x = images(2, 64)
    assert_same_logits(ours, ref2, x)
    assert_same_logits(ours, ref, x)


def analytic_params(c: int, d: int, legacy: bool, m: int = 16,
                    n: int = 196, classes: int = 1000) -> int:
    """Parameters of a 12-block TNT classifier, counted by hand."""
    def attn(x):  # qk, v without bias; proj with bias
        return 4 * x * x + x

    def mlp(x):  # x -> 4x -> x with biases
        return 8 * x * x + 5 * x

    inner = 4 * c + attn(c) + mlp(c)
    fusion = (2 * c + m * c * d + d) if legacy else \
        (2 * m * c + m * c * d + 2 * d)
    outer = 4 * d + attn(d) + mlp(d)
    stem = (3 * 49 * c + c) + m * c + 2 * m * c + (m * c * d + d) + \
        2 * d + d + (n + 1) * d  # conv, pixel_pos, LN, proj, LN, cls, pos
    return 12 * (inner + fusion + outer) + stem + 2 * d + \
        d * classes + classes


def test_legacy_param_count():
    # the legacy fusion: LN over c and a bias, no LN over d (timm's counts)
    assert analytic_params(24, 384, legacy=True) == 23_755_336
    assert analytic_params(24, 384, legacy=False) == 23_768_584
    net = build_classifier(dict(ARCH_SETTINGS['ti'], depth=12), 'legacy')
    assert count_params(net) == analytic_params(12, 192, legacy=True)


@pytest.mark.parametrize('arch', ['ti', 's', 'b'])
def test_params_and_macs_match_the_paper(arch):
    ours = build_classifier(arch).eval()
    a = ARCH_SETTINGS[arch]
    c, d, m, n_p = a['inner_dims'], a['embed_dims'], 16, 196
    n = count_params(ours)
    assert n == analytic_params(c, d, legacy=False)
    paper_params, paper_macs = PAPER[arch]
    assert abs(n - paper_params) / paper_params < 0.01
    # analytic MACs (spec Sec. 2): per block inner + fusion + outer, plus
    # the 7x7 word conv, the stem projection and the classifier
    inner = n_p * (m * c * 3 * c + 2 * m * m * c + m * c * c +
                   2 * m * c * 4 * c)
    fusion = n_p * m * c * d
    outer = (n_p + 1) * 12 * d * d + 2 * (n_p + 1)**2 * d
    analytic = 12 * (inner + fusion + outer) + n_p * m * c * 3 * 49 + \
        n_p * m * c * d + d * 1000
    x = torch.zeros(1, 3, 224, 224)
    macs = count_macs(lambda: ours(x, mode='tensor'))
    assert abs(macs - analytic) / analytic < 0.005
    assert abs(macs - paper_macs) / paper_macs < 0.01


def test_mac_counter_agrees_with_mmengine_and_unfused_attention():
    from mmengine.analysis import FlopAnalyzer
    fused = TransformerInTransformer(arch=TINY, img_size=64).eval()
    plain = TransformerInTransformer(arch=TINY, img_size=64,
                                     fused_attn=False).eval()
    x = torch.zeros(1, 3, 64, 64)
    macs = count_macs(lambda: fused(x))
    assert macs == count_macs(lambda: plain(x))
    analyzer = FlopAnalyzer(plain, x)
    analyzer.unsupported_ops_warnings(False)
    ops = analyzer.by_operator()
    # mmengine also counts LayerNorm; the MAC convention leaves it out
    assert sum(v for k, v in ops.items() if k != 'layer_norm') == macs


@pytest.mark.parametrize('arch', ['ti', 's', 'b', 'custom'])
@pytest.mark.parametrize('structure', ['official', 'legacy'])
def test_shapes_of_every_setting(arch, structure):
    # the widths and heads of each variant; depth 2 keeps it cheap (the
    # full-depth models are checked against timm above)
    arch = dict(TINY, depth=3) if arch == 'custom' else \
        dict(ARCH_SETTINGS[arch], depth=2)
    net = TransformerInTransformer(
        arch=arch, img_size=32, structure=structure, out_type='raw',
        out_indices=(0, -1)).eval()
    d, depth = net.embed_dims, net.depth
    assert net.out_indices == [0, depth - 1]
    x = torch.randn(2, 3, 32, 64)  # 2 x 4 patches: patch_pos interpolated
    with torch.no_grad():
        outs = {}
        for out_type in net.OUT_TYPES:
            net.out_type = out_type
            outs[out_type] = net(x)
    assert [o.shape for o in outs['raw']] == [(2, 9, d)] * 2
    assert [o.shape for o in outs['cls_token']] == [(2, d)] * 2
    assert [o.shape for o in outs['featmap']] == [(2, d, 2, 4)] * 2
    assert [o.shape for o in outs['avg_featmap']] == [(2, d)] * 2
    raw = outs['raw'][1]
    torch.testing.assert_close(outs['cls_token'][1], raw[:, 0])
    torch.testing.assert_close(outs['featmap'][1][:, :, 1, 2],
                               raw[:, 1 + 4 + 2])
    # final_norm (unit affine at init) applies to the last output only
    first = outs['raw'][0]
    torch.testing.assert_close(raw.mean(-1), torch.zeros(2, 9), atol=1e-5,
                               rtol=0)
    assert first.mean(-1).abs().max() > 1e-3


def test_interpolated_position_embedding_for_another_input_size():
    # a model made for 64x64 serves 96x96 by resizing patch_pos bicubically
    ref = randomise(timm_model(TINY, img_size=64), seed=5)
    ours = build_classifier(TINY, img_size=64)
    ours.load_state_dict(convert_timm(ref.state_dict()), strict=True)
    ours.eval()
    # reference: timm's model for 96x96 holding the same weights and the
    # 4x4 -> 6x6 bicubic resize of the patch part of patch_pos, done here
    # (timm's own resampler uses antialias, a slightly different kernel)
    state = dict(ref.state_dict())
    pos = state['patch_pos']
    grid = pos[:, 1:].reshape(1, 4, 4, 48).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, size=(6, 6), mode='bicubic',
                                     align_corners=False)
    state['patch_pos'] = torch.cat(
        [pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
    big = timm_model(TINY, img_size=96).eval()
    big.load_state_dict(state)
    x = images(2, 96)
    assert_same_logits(ours, big, x)
    # the same weights loaded into a model built for 96 (load hook)
    ours96 = build_classifier(TINY, img_size=96).double()  # as ours now
    ours96.load_state_dict(ours.state_dict(), strict=True)
    ours96.eval()
    assert ours96.backbone.patch_pos.shape == (1, 37, 48)
    assert_same_logits(ours96, ours, x, lambda x: ours(x, mode='tensor'))


def test_gradients_reach_inner_and_outer_blocks():
    net = TransformerInTransformer(arch=TINY, img_size=32,
                                   drop_path_rate=0.1).train()
    torch.manual_seed(0)
    net(torch.randn(4, 3, 32, 32))[0].square().sum().backward()
    names = ['pixel_embed.proj.weight', 'pixel_pos', 'patch_pos',
             'cls_token', 'proj.weight']
    for i in range(net.depth):
        names += [f'blocks.{i}.{m}' for m in (
            'attn_in.qk.weight', 'attn_in.v.weight', 'mlp_in.fc1.weight',
            'norm1_proj.weight', 'proj.weight', 'norm2_proj.weight',
            'attn_out.qk.weight', 'mlp.fc2.weight')]
    params = dict(net.named_parameters())
    for name in names:
        grad = params[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_drop_path_rates_and_stochastic_training():
    net = TransformerInTransformer(arch=dict(TINY, depth=3), img_size=32,
                                   drop_path_rate=0.3)
    rates = [0.] + [b.drop_path.drop_prob for b in net.blocks[1:]]
    assert rates == pytest.approx([0., 0.15, 0.3])
    assert isinstance(net.blocks[0].drop_path, nn.Identity)
    x = torch.randn(8, 3, 32, 32)
    net.train()
    torch.manual_seed(0)
    a = net(x)[0]
    b = net(x)[0]
    assert not torch.allclose(a, b)
    net.eval()
    torch.testing.assert_close(net(x)[0], net(x)[0])


def test_frozen_stages_get_no_gradient():
    net = TransformerInTransformer(arch=dict(TINY, depth=3), img_size=32,
                                   frozen_stages=2).train()
    net(torch.randn(2, 3, 32, 32))[0].sum().backward()
    for name, p in net.named_parameters():
        frozen = not (name.startswith('blocks.2.') or
                      name.startswith('norm.'))
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name


def test_se_option_adds_the_official_gate():
    net = TransformerInTransformer(arch=TINY, img_size=32, se=True)
    keys = net.state_dict().keys()
    assert 'blocks.0.se_layer.fc.1.weight' in keys
    assert net(torch.randn(1, 3, 32, 32))[0].shape == (1, 48)


def test_toy_model_fits_a_batch():
    """Loss goes down over 20 steps of AdamW on one fixed batch."""
    torch.manual_seed(0)
    model = build_classifier(TINY, num_classes=4, img_size=32)
    model.init_weights()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 4
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x, mode='tensor'), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='arch'):
        TransformerInTransformer(arch='xl')
    with pytest.raises(ValueError, match='custom arch'):
        TransformerInTransformer(arch=dict(embed_dims=8))
    with pytest.raises(ValueError, match='structure'):
        TransformerInTransformer(arch=TINY, structure='v2')
    with pytest.raises(ValueError, match='out_type'):
        TransformerInTransformer(arch=TINY, out_type='gap')
    with pytest.raises(ValueError, match='out_indices'):
        TransformerInTransformer(arch=TINY, out_indices=(2, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        TransformerInTransformer(arch=TINY, frozen_stages=3)
    net = TransformerInTransformer(arch=TINY, img_size=32)
    with pytest.raises(ValueError, match='multiple of the patch size'):
        net(torch.randn(1, 3, 40, 40))


def test_registered_under_our_name_and_usable_from_mmseg():
    from mmpretrain.models.backbones import TNT
    from mmpretrain.registry import MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    assert MODELS.get('TransformerInTransformer') is \
        TransformerInTransformer
    assert MODELS.get('TNT') is TNT  # upstream's, not replaced
    init_default_scope('mmseg')
    net = SEG_MODELS.build(dict(
        type='mmpretrain.TransformerInTransformer', arch=TINY, img_size=64,
        out_type='featmap', out_indices=(0, 1)))
    outs = net(torch.randn(1, 3, 128, 96))
    assert [o.shape for o in outs] == [(1, 48, 8, 6)] * 2


def test_converter_tool_writes_loadable_checkpoints(tmp_path, script):
    import importlib.util

    from projects.common.checkpoint import safe_load
    tool = osp.join(ROOT, 'tools/model_converters/tnt_to_evlab.py')
    # the command line, on a synthetic official checkpoint
    ref = randomise(timm_model(TINY, img_size=64), seed=7)
    src, dst = tmp_path / 'official.pth', tmp_path / 'evlab.pth'
    torch.save({'state_dict': official_state_dict(ref)}, src)
    res = script(tool, ['--source', 'official', str(src), str(dst)])
    assert res.returncode == 0, res.stderr
    ckpt = safe_load(dst)
    assert ckpt['meta']['structure'] == 'official'
    ours = build_classifier(TINY, img_size=64)
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    assert_same_logits(ours.eval(), ref, images(1, 64))
    # its convert() on a timm legacy state dict (in process: one start-up)
    spec = importlib.util.spec_from_file_location('tnt_to_evlab', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ref = randomise(timm_model(TINY, 'legacy', img_size=64), seed=6)
    torch.save(ref.state_dict(), src)
    module.convert(str(src), str(dst), 'timm')
    ckpt = safe_load(dst)
    assert ckpt['meta']['structure'] == 'legacy'
    ours = build_classifier(TINY, 'legacy', img_size=64)
    ours.load_state_dict(ckpt['state_dict'], strict=True)
    assert_same_logits(ours.eval(), ref, images(1, 64))

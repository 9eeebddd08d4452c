# Copyright (c) EVLab contributors.
"""Checks against timm (spec section 5): the DeiT student converted from
timm gives timm's logits in mmpretrain, the converter tool on a
DeiT-release-style file, and the MACs of student and teacher. Logits are
compared in float64, so the checks hold whatever kernels a CPU picks."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from projects.common.checkpoint import (
    CheckpointError,
    load_foreign_state_dict,
    safe_load,
)
from projects.common.timm_vit import convert_timm_vit

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TOOL = osp.join(ROOT, 'tools', 'model_converters',
                'timm_vit_to_mmpretrain.py')
DEIT_CFG = osp.join(ROOT, 'configs', 'manifold_kd', 'deit-tiny_8xb64_in1k.py')


def timm_deit(distilled: bool = False, seed: int = 0):
    """timm DeiT-Ti with every parameter random (LayerNorm affine too,
    tokens and position embeddings non-zero), in eval mode."""
    import timm
    name = 'deit_tiny_distilled_patch16_224' if distilled else \
        'deit_tiny_patch16_224'
    model = timm.create_model(name, pretrained=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 +
                    (1.0 if p.dim() == 1 and 'norm' in _name(model, p)
                     else 0.0))
    return model.eval()


def _name(model, param):
    return next(n for n, p in model.named_parameters() if p is param)


def mmpretrain_deit(distilled: bool = False):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = Config.fromfile(DEIT_CFG).model  # the recipe's student
    if distilled:
        model.backbone.type = 'DistilledVisionTransformer'
        model.head.type = 'DeiTClsHead'
    return MODELS.build(model).eval()


def assert_close64(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float64 rounding: 1e-10 of the largest magnitude."""
    assert actual.dtype == expected.dtype == torch.float64
    scale = max(float(expected.abs().max()), 1.0)
    torch.testing.assert_close(actual, expected, rtol=1e-9,
                               atol=1e-10 * scale)


@pytest.mark.parametrize('distilled', [False, True])
def test_converted_timm_deit_gives_timm_logits(distilled):
    ref = timm_deit(distilled)
    ours = mmpretrain_deit(distilled)
    ours.load_state_dict(convert_timm_vit(ref.state_dict()), strict=True)
    ours.double()
    ref.double()
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(x)
        got = ours(x, mode='tensor')
    assert want.abs().max() > 0.1  # a non-degenerate comparison
    assert_close64(got, want)
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in ref.parameters())


def test_converter_refuses_unknown_parts():
    state = {'blocks.0.norm1.weight': torch.ones(4),
             'blocks.0.ls1.gamma': torch.ones(4), 'fc_norm.weight':
             torch.ones(4)}
    with pytest.raises(KeyError, match=r"blocks\.0\.ls1\.gamma.*fc_norm"):
        convert_timm_vit(state)
    with pytest.raises(KeyError, match='no transformer block'):
        convert_timm_vit({'norm.weight': torch.ones(4)})


def test_converter_tool_on_a_deit_release_file(tmp_path, script):
    """The DeiT / ManifoldKD releases are ``{'model': state_dict}``, here
    also with DDP ``module.`` prefixes; the output loads strictly into the
    recipe's DeiT-Tiny with timm's logits. A file with parts mmpretrain's
    ViT lacks fails with exit code 2 and names the keys."""
    ref = timm_deit(seed=3)
    src, dst = tmp_path / 'release.pth', tmp_path / 'deit-tiny.pth'
    torch.save({'model': {f'module.{k}': v
                          for k, v in ref.state_dict().items()},
                'epoch': 299}, src)
    res = script(TOOL, [str(src), str(dst)])
    assert res.returncode == 0, res.stderr
    ours = mmpretrain_deit()
    ours.load_state_dict(safe_load(dst)['state_dict'], strict=True)
    ours.double()
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        assert_close64(ours(x, mode='tensor'), ref.double()(x))

    bad = dict(ref.state_dict(), **{'blocks.3.ls2.gamma': torch.ones(192)})
    torch.save(bad, src)
    res = script(TOOL, [str(src), str(dst)])
    assert res.returncode == 2
    assert 'blocks.3.ls2.gamma' in res.stderr and str(src) in res.stderr


def test_foreign_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match='does not exist'):
        load_foreign_state_dict(tmp_path / 'missing.pth')
    path = tmp_path / 'plain.pth'
    torch.save({'w': torch.ones(1)}, path)
    assert set(load_foreign_state_dict(path)) == {'w'}
    with pytest.raises(CheckpointError, match='no EMA weights'):
        load_foreign_state_dict(path, ema=True)
    torch.save({'model': {'w': torch.ones(1)},
                'model_ema': {'w': torch.zeros(1)}}, path)  # DeiT's layout
    assert load_foreign_state_dict(path)['w'] == 1
    assert load_foreign_state_dict(path, ema=True)['w'] == 0
    for bad in ({'epoch': 3, 'args': 'lr=1'}, {'model': [torch.ones(1)]}):
        torch.save(bad, path)
        with pytest.raises(CheckpointError,
                           match=f'{path}.*holds no state dict'):
            load_foreign_state_dict(path)


def test_converted_checkpoint_is_written_with_the_umask(tmp_path):
    """Atomic writes go through mkstemp (owner-only); the result gets the
    mode a plain open() would give."""
    import os

    from projects.common.checkpoint import save_converted
    old = os.umask(0o022)
    try:
        save_converted({'w': torch.ones(1)}, tmp_path / 'out.pth', a=1)
    finally:
        os.umask(old)
    assert (tmp_path / 'out.pth').stat().st_mode & 0o777 == 0o644
    assert safe_load(tmp_path / 'out.pth')['meta'] == {'a': 1}


def test_macs_of_student_and_teacher():
    """Spec: DeiT-Ti 1.25-1.26 GMACs, CaiT-S24 9.3-9.4 GMACs at 224 (with
    the fused attention counted)."""
    import timm

    from projects.common.complexity import count_macs
    x = torch.randn(1, 3, 224, 224)
    student = mmpretrain_deit()
    # frozen as in the distiller (FlopCounterMode's module tracker trips
    # over CaiT's class token, a parameter that requires grad, as input)
    teacher = timm.create_model('cait_s24_224', pretrained=False).eval()
    teacher.requires_grad_(False)
    s_macs = count_macs(lambda: student(x, mode='tensor'))
    t_macs = count_macs(lambda: teacher(x))
    assert 1.25e9 <= s_macs <= 1.26e9, s_macs
    assert 9.3e9 <= t_macs <= 9.4e9, t_macs

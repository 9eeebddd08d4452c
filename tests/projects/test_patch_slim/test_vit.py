# Copyright (c) EVLab contributors.
"""PatchSlimViT (spec sections 2.7 and 5): with every token kept it is
mmpretrain's VisionTransformer; the gathered path equals mmpretrain's own
blocks run on the tokens present; the masked-dense path equals the
gathered one; analytic MACs equal a counter; pruned checkpoints carry their
keep lists; bad keep lists are refused. Outputs are compared in float64,
so the checks hold whatever kernels a CPU picks."""
import json
import random

import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from projects.common.complexity import count_macs
from projects.common.errors import EVLabError
from projects.patch_slim import (
    PatchSlimViT,
    model_macs,
    save_keep_indices,
    vit_macs,
)

#: tokens output by blocks 1..12 of DeiT-Ti (spec section 3): 0.686 G MACs
REFERENCE = [197, 197, 170, 150, 130, 110, 95, 80, 65, 50, 35, 1]
TINY = dict(arch=dict(embed_dims=16, num_layers=4, num_heads=2,
                      feedforward_channels=32),
            img_size=32, patch_size=8)  # 16 patches + cls = 17 tokens


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter random (norm affines near 1, tokens non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.copy_(1 + 0.1 * noise if ('ln' in name and 'weight' in name)
                    else 0.2 * noise)


def nested_keep(num_layers: int, num_tokens: int, seed: int,
                last_cls_only: bool = True):
    """Random nested keep lists: each block keeps a random subset of the
    previous block's tokens, always the class token."""
    rng = random.Random(seed)
    present = list(range(num_tokens))
    keep = []
    for layer in range(num_layers):
        if layer == num_layers - 1 and last_cls_only:
            present = [0]
        else:
            rest = present[1:]
            n = rng.randint(len(rest) // 2, len(rest))
            present = [0] + sorted(rng.sample(rest, n))
        keep.append(present)
    return keep


def pair(**kwargs):
    """A random dense mmpretrain ViT and a PatchSlimViT with its weights,
    both float64, eval."""
    dense = VisionTransformer(**kwargs)
    randomize(dense)
    ours = PatchSlimViT(**kwargs)
    ours.load_state_dict(dense.state_dict())  # a dense checkpoint, strict
    dense.double().eval()  # (mmpretrain's ViT.train returns None)
    return dense, ours.double().eval()


def test_all_keep_is_mmpretrains_deit_tiny():
    dense, ours = pair(arch='deit-tiny', img_size=224, patch_size=16)
    assert not ours.is_pruned and ours.tokens_per_block == [197] * 12
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        ref, out = dense(x)[0], ours(x)[0]
    assert ref.shape == out.shape == (2, 192)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_cls_only_last_block_gives_the_dense_class_token():
    dense, ours = pair(**TINY)
    keep = [list(range(17))] * 3 + [[0]]
    ours.set_keep(keep)
    assert ours.tokens_per_block == [17, 17, 17, 1]
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], dense(x)[0], rtol=0,
                                   atol=1e-10)


def _reference(dense: VisionTransformer, keep, x: torch.Tensor):
    """mmpretrain's own blocks, each run on the tokens present at its
    input; then the rows of the tokens it keeps. A block's output row
    depends on its own token and on the keys present only, so this is
    what pruning must give."""
    B = x.shape[0]
    t, _ = dense.patch_embed(x)
    t = torch.cat((dense.cls_token.expand(B, -1, -1), t), dim=1)
    t = t + dense.pos_embed
    present = list(range(t.shape[1]))
    for layer, kept in zip(dense.layers, keep):
        t = layer(t)  # all rows of the present tokens
        t = t[:, [present.index(i) for i in kept]]
        present = list(kept)
    return dense.ln1(t)[:, 0]


@pytest.mark.parametrize('seed', range(4))
def test_gathered_and_masked_paths_equal_mmpretrains_blocks(seed):
    dense, ours = pair(**TINY)
    keep = nested_keep(4, 17, seed, last_cls_only=seed % 2 == 0)
    ours.set_keep(keep)
    assert ours.keep_lists() == keep
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        ref = _reference(dense, keep, x)
        gathered = ours(x)[0]
        ours.forward_mode = 'masked'
        masked = ours(x)[0]
    torch.testing.assert_close(gathered, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(masked, ref, rtol=0, atol=1e-10)


def test_masked_path_trains_only_what_the_gathered_path_uses():
    """The dropped rows get no gradient through later blocks: the
    gradients of the weights equal the gathered path's."""
    _, ours = pair(**TINY)
    ours.set_keep(nested_keep(4, 17, 3))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    grads = {}
    for mode in ('gather', 'masked'):
        ours.forward_mode = mode
        ours.zero_grad()
        ours(x)[0].square().sum().backward()
        grads[mode] = {n: p.grad.clone() for n, p in ours.named_parameters()
                       if p.grad is not None}
    assert grads['gather'].keys() == grads['masked'].keys()
    for name, g in grads['gather'].items():
        torch.testing.assert_close(grads['masked'][name], g, rtol=0,
                                   atol=1e-10, msg=name)


def test_spec_macs_of_deit_tiny():
    dense = vit_macs([197] * 12, 192, 768, 196, 16, 3, 1000)['total']
    pruned = vit_macs(REFERENCE, 192, 768, 196, 16, 3, 1000)['total']
    assert abs(dense / 1e9 - 1.254) < 0.001  # spec section 3 (derived)
    assert abs(pruned / 1e9 - 0.686) < 0.001
    assert 1 - pruned / dense > 0.45


@pytest.mark.parametrize('schedule', ['dense', 'reference'])
def test_analytic_macs_equal_the_counter(schedule):
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='PatchSlimViT', arch='deit-tiny', img_size=224,
                      patch_size=16),
        neck=None,
        head=dict(type='VisionTransformerClsHead', num_classes=1000,
                  in_channels=192))).eval()
    if schedule == 'reference':
        model.backbone.set_keep(
            [list(range(n)) for n in REFERENCE])
    x = torch.randn(1, 3, 224, 224)
    counted = count_macs(lambda: model(x))
    analytic = model_macs(model.backbone, num_classes=1000)['total']
    assert abs(counted - analytic) / analytic < 0.005, (counted, analytic)


def test_pruned_checkpoint_round_trip(tmp_path):
    _, ours = pair(**TINY)
    keep = nested_keep(4, 17, 1)
    ours.set_keep(keep)
    path = tmp_path / 'pruned.pth'
    torch.save(ours.state_dict(), path)
    fresh = PatchSlimViT(**TINY).double().eval()  # keep-all config
    fresh.load_state_dict(torch.load(path))
    assert fresh.keep_lists() == keep and fresh.is_pruned
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x)[0], ours(x)[0], rtol=0, atol=0)


def test_dense_checkpoint_keeps_the_configured_lists():
    """A checkpoint of a PatchSlimViT keeping every token (a dense model)
    does not undo the lists a config gives (a baseline started from the
    dense weights)."""
    dense, _ = pair(**TINY)
    source = PatchSlimViT(**TINY)
    source.load_state_dict(dense.float().state_dict())
    keep = nested_keep(4, 17, 5)
    model = PatchSlimViT(keep_indices=keep, **TINY)
    model.load_state_dict(source.state_dict())
    assert model.keep_lists() == keep
    assert torch.equal(model.layers[0].attn.qkv.weight,
                       source.layers[0].attn.qkv.weight)


def test_keep_indices_json_builds_the_model(tmp_path):
    keep = nested_keep(4, 17, 2)
    path = tmp_path / 'keep_indices.json'
    save_keep_indices(str(path), keep, macs=123)
    data = json.loads(path.read_text())
    assert data['tokens'] == [len(k) for k in keep] and data['macs'] == 123
    model = PatchSlimViT(keep_indices=str(path), **TINY)
    assert model.keep_lists() == keep


@pytest.mark.parametrize('keep, needle', [
    ([list(range(17))] * 3, 'has 3 lists, the model has 4 blocks'),
    ([list(range(17))] * 3 + [[1, 2]], 'drops the class token'),
    ([list(range(17)), [0, 1, 2], [0, 1, 3], [0]],
     'not nested top-down: block 2 keeps tokens [3]'),
    ([list(range(17))] * 3 + [[0, 17]], 'outside the 17 tokens'),
])
def test_bad_keep_lists_are_refused(keep, needle):
    with pytest.raises(EVLabError, match=needle.replace('[', r'\[')
                       .replace(']', r'\]')):
        PatchSlimViT(keep_indices=keep, **TINY)


def test_pruned_checkpoint_of_another_depth_is_refused():
    _, ours = pair(**TINY)
    ours.set_keep(nested_keep(4, 17, 0))
    other = PatchSlimViT(**dict(TINY, arch=dict(TINY['arch'], num_layers=3)))
    with pytest.raises(EVLabError, match='is for 4 blocks x 17 tokens; this '
                       'model has 3 blocks x 17 tokens'):
        other.load_state_dict(ours.state_dict())


def test_pruning_needs_the_class_token_output():
    with pytest.raises(EVLabError, match="out_type must be 'cls_token'"):
        PatchSlimViT(keep_indices=nested_keep(4, 17, 0),
                     out_type='avg_featmap', **TINY)


def test_registered_under_a_name_of_its_own():
    init_default_scope('mmpretrain')
    assert MODELS.get('PatchSlimViT') is PatchSlimViT
    assert MODELS.get('VisionTransformer') is VisionTransformer

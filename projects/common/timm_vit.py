# Copyright (c) EVLab contributors.
"""timm ViT / DeiT weights -> mmpretrain ``VisionTransformer`` names.

For checkpoints trained with timm or the DeiT code (the DeiT releases, the
ManifoldKD student release, ...), so that they load strictly into an
mmpretrain ``ImageClassifier`` with ``VisionTransformer`` +
``VisionTransformerClsHead`` (plain) or ``DistilledVisionTransformer`` +
``DeiTClsHead`` (``dist_token`` / ``head_dist`` present), e.g.
``configs/manifold_kd/deit-tiny_8xb64_in1k.py``. Values are copied
unchanged: both implementations use the same fused ``qkv`` layout, the same
pre-norm blocks and the same final norm on the class token (tested: equal
logits to timm's model).

Variants with other parts (layer scale ``ls1/ls2``, ``fc_norm`` of
average-pooled models, CLIP's ``norm_pre``, register tokens) are refused
with the names of the keys that have no counterpart, never dropped
silently.
"""
import re
from typing import Dict

import torch

_TOP = {
    'cls_token': 'backbone.cls_token',
    'dist_token': 'backbone.dist_token',
    'pos_embed': 'backbone.pos_embed',
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'norm.weight': 'backbone.ln1.weight',
    'norm.bias': 'backbone.ln1.bias',
    'head.weight': 'head.layers.head.weight',
    'head.bias': 'head.layers.head.bias',
    'head_dist.weight': 'head.layers.head_dist.weight',
    'head_dist.bias': 'head.layers.head_dist.bias',
}
_BLOCK = {
    'norm1': 'ln1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'norm2': 'ln2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}
_BLOCK_RE = re.compile(r'^blocks\.(\d+)\.(.+)\.(weight|bias)$')


def convert_timm_vit(state: Dict[str, torch.Tensor]
                     ) -> Dict[str, torch.Tensor]:
    """Rename a timm ViT / DeiT state dict (DDP ``module.`` prefixes
    allowed) to mmpretrain's keys.

    Raises:
        KeyError: keys without an mmpretrain counterpart (listed), or no
            transformer block at all.
    """
    out, unknown = {}, []
    for key, value in state.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        match = _BLOCK_RE.match(key)
        if key in _TOP:
            out[_TOP[key]] = value
        elif match and match.group(2) in _BLOCK:
            index, part, kind = match.groups()
            out[f'backbone.layers.{index}.{_BLOCK[part]}.{kind}'] = value
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(
            f'{len(unknown)} keys of the timm checkpoint have no '
            f'counterpart in mmpretrain\'s VisionTransformer: '
            f'{sorted(unknown)[:8]}{" ..." if len(unknown) > 8 else ""} '
            f'(layer scale, fc_norm and register tokens are not supported)')
    if not any(k.startswith('backbone.layers.') for k in out):
        raise KeyError('no transformer block (blocks.*) in the checkpoint: '
                       'is it a timm ViT / DeiT state dict?')
    return out

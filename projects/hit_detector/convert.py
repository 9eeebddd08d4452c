# Copyright (c) EVLab contributors.
"""The released Hit-Detector backbone checkpoint (``fbhit_7747.pth``, the
ImageNet ``FBNet(arch='fbnet_hit')`` of ``ggjy/HitDet.pytorch``) ->
EVLab.

Our :class:`~.models.HitBackbone` keeps the released module names
(``layers.{i}.conv1.conv.weight``, ``layers.{i}.conv1.bn.*``, ...), so the
backbone maps key for key under ``backbone.``; a classifier (``fc.*`` or
``classifier.*``) goes to mmpretrain's ``LinearClsHead`` (``head.fc.*``).
The file's exact layout is [uncertain] until a real one is seen (spec 5):
``module.`` and ``backbone.`` prefixes are stripped, and the result is
checked against a built ``HitBackbone``, naming any missing, unexpected or
mis-shaped key.
"""
from typing import Dict

import torch

from ..common.errors import EVLabError

_HEADS = ('fc.', 'classifier.', 'head.fc.', 'linear.')


def convert_official(state_dict: Dict[str, torch.Tensor],
                     check: bool = True) -> Dict[str, torch.Tensor]:
    """Released keys -> ``backbone.*`` (and ``head.fc.*``).

    Raises:
        EVLabError: (with ``check``) the backbone keys do not match the
            released architecture, naming the first differences.
    """
    out, backbone = {}, {}
    for key, value in state_dict.items():
        for prefix in ('module.', 'backbone.'):
            if key.startswith(prefix):
                key = key[len(prefix):]
        head = next((p for p in _HEADS if key.startswith(p)), None)
        if head is not None:
            out['head.fc.' + key[len(head):]] = value
        else:
            backbone[key] = value
            out['backbone.' + key] = value
    if check:
        check_backbone_state(backbone)
    return out


def check_backbone_state(state: Dict[str, torch.Tensor]) -> None:
    """Refuse a state dict that is not the released backbone's."""
    from .models import HitBackbone
    ref = HitBackbone().state_dict()
    missing = sorted(set(ref) - set(state))
    unexpected = sorted(set(state) - set(ref))
    shapes = sorted(k for k in set(ref) & set(state)
                    if tuple(ref[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (('missing', missing), ('unexpected', unexpected),
                           ('of another shape', shapes)):
            if keys:
                parts.append(f'{len(keys)} {what} (e.g. {keys[:3]})')
        raise EVLabError(
            'the checkpoint is not the released Hit-Detector backbone '
            '(fbnet_hit): ' + '; '.join(parts))

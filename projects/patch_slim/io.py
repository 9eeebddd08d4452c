# Copyright (c) EVLab contributors.
"""``keep_indices.json``: the tokens each block of a pruned ViT keeps."""
import json
import os.path as osp
from typing import List, Optional, Sequence

from ..common.errors import EVLabError
from ..common.nas.io import atomic_write_text


def save_keep_indices(path: str, keep: Sequence[Sequence[int]],
                      **meta) -> None:
    """Write ``{"keep_indices": [[...], ...], "tokens": [...], **meta}``
    atomically (a kill leaves the old file or the new one)."""
    keep = [[int(i) for i in row] for row in keep]
    data = dict(keep_indices=keep, tokens=[len(row) for row in keep])
    data.update(meta)
    atomic_write_text(path, json.dumps(data, indent=1) + '\n')


def load_keep_indices(path: str,
                      data: Optional[dict] = None) -> List[List[int]]:
    """The per-block lists of a ``keep_indices.json`` (checked later,
    against the model, by :class:`~.vit.PatchSlimViT`)."""
    if data is None:
        if not osp.isfile(path):
            raise EVLabError(f'keep_indices file {path!r} does not exist')
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise EVLabError(f'{path}: not valid JSON ({e})') from None
    if not isinstance(data, dict) or 'keep_indices' not in data:
        raise EVLabError(f'{path}: no "keep_indices" key (a list of one '
                         f'list of token positions per block)')
    keep = data['keep_indices']
    if not isinstance(keep, list) or not all(
            isinstance(row, list) for row in keep):
        raise EVLabError(f'{path}: "keep_indices" must be a list of lists '
                         f'of token positions')
    return keep

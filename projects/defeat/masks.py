# Copyright (c) EVLab contributors.
"""Ground-truth object masks per FPN level, as DeFeat builds them.

Follows the official code (``ggjy/DeFeat.pytorch``), see the spec
``defeat.md`` section 2.1:

1. every box goes to exactly one level,
   ``k = clamp(floor(log2(sqrt((w + 1) * (h + 1)) / 56 + 1e-6)), 0, L - 1)``
   (the ``+ 1`` is mmdet v1/v2's legacy box size, ``legacy_plus_one``);
2. on its level the box covers ``M[int(y1/s):min(int(y2/s), H),
   int(x1/s):min(int(x2/s), W)]`` (truncation, end-exclusive); a box that
   truncates to an empty slice marks the single pixel ``M[ly, lx]``, with
   the indices clamped into the map (our reading: the official code does
   not clamp);
3. a level's mask holds only the boxes assigned to it, on the padded map.
"""
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor


def _box_tensor(boxes) -> Tensor:
    # mmdet's HorizontalBoxes (and other BaseBoxes) keep the tensor in
    # `.tensor`; plain (K, 4) tensors are used as they are
    boxes = getattr(boxes, 'tensor', boxes)
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or \
            boxes.size(-1) != 4:
        raise ValueError(f'expected boxes of shape (K, 4) in x1, y1, x2, y2 '
                         f'order, got {getattr(boxes, "shape", boxes)}')
    return boxes


def assign_levels(boxes: Tensor, num_levels: int, finest_scale: float = 56.,
                  legacy_plus_one: bool = True) -> Tensor:
    """The FPN level of every box: sqrt(area) < 2 * finest_scale goes to
    level 0, the next octave to level 1, and so on."""
    boxes = _box_tensor(boxes).float()
    extra = 1. if legacy_plus_one else 0.
    w = boxes[:, 2] - boxes[:, 0] + extra
    h = boxes[:, 3] - boxes[:, 1] + extra
    scale = torch.sqrt((w * h).clamp(min=0))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(0, num_levels - 1).long()


def gt_level_masks(batch_boxes: Sequence[Union[Tensor, object]],
                   feat_sizes: Sequence[Tuple[int, int]],
                   strides: Sequence[int],
                   finest_scale: float = 56.,
                   legacy_plus_one: bool = True) -> List[Tensor]:
    """Binary object masks, one ``(N, H_l, W_l)`` tensor per level.

    Args:
        batch_boxes: per image, the ground-truth boxes in network-input
            pixels (after resize and flip), a ``(K, 4)`` tensor or mmdet
            ``HorizontalBoxes``.
        feat_sizes: ``(H_l, W_l)`` of every level of the padded batch.
        strides: the stride of every level (e.g. 8, 16, ..., 128 for
            RetinaNet's P3-P7).
        finest_scale: the box size that starts the second level, halved.
        legacy_plus_one: measure boxes as ``x2 - x1 + 1`` (official).

    Returns:
        list[Tensor]: float masks with values 0 and 1.
    """
    if len(feat_sizes) != len(strides):
        raise ValueError(f'{len(feat_sizes)} feature sizes but '
                         f'{len(strides)} strides')
    num_levels = len(strides)
    n = len(batch_boxes)
    masks = [torch.zeros(n, int(h), int(w)) for h, w in feat_sizes]
    for i, boxes in enumerate(batch_boxes):
        boxes = _box_tensor(boxes).detach().float().cpu()
        if boxes.numel() == 0:
            continue
        levels = assign_levels(boxes, num_levels, finest_scale,
                               legacy_plus_one).tolist()
        for (x1, y1, x2, y2), k in zip(boxes.tolist(), levels):
            s = strides[k]
            h, w = masks[k].shape[-2:]
            lx, ly = int(x1 / s), int(y1 / s)  # truncation toward zero
            rx, ry = min(int(x2 / s), w), min(int(y2 / s), h)
            if rx <= lx or ry <= ly:
                masks[k][i, min(max(ly, 0), h - 1),
                         min(max(lx, 0), w - 1)] = 1
            else:
                masks[k][i, max(ly, 0):ry, max(lx, 0):rx] = 1
    return masks

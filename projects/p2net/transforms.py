# Copyright (c) EVLab contributors.
"""Pipeline steps that carry a part-parsing map next to the image.

The map rides in ``results['gt_seg_map']``, so mmcv's stock ``Resize``
(nearest for segmentation maps) and ``RandomFlip`` keep image and map
aligned (spec 2.5, "parsing map as a segmentation map").
"""
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import TRANSFORMS

from ..common.errors import EVLabError

MISSING_MODES = ('error', 'zeros')


@TRANSFORMS.register_module()
class LoadPartMap(BaseTransform):
    """Read the part map at ``results['seg_map_path']`` into
    ``results['gt_seg_map']`` (uint8, H x W).

    Put it after ``LoadImageFromFile``: a map must be single-channel, hold
    labels in ``[0, num_parts)`` (255, a pad value, is allowed and read as
    background by the model) and have the image's aspect ratio; its size
    may differ (the fixed-size ``Resize`` maps both to the input size).

    Args:
        num_parts (int): K, the number of labels (0 = background).
            Defaults to 5.
        missing (str): What a missing map file does: ``'error'`` (raise,
            naming the file) or ``'zeros'`` (an all-background map).
            Defaults to ``'error'``.
        max_aspect_diff (float): The largest relative difference between
            the map's and the image's aspect ratios. Defaults to 0.05.
    """

    def __init__(self, num_parts: int = 5, missing: str = 'error',
                 max_aspect_diff: float = 0.05):
        if missing not in MISSING_MODES:
            raise ValueError(f'missing must be one of {MISSING_MODES}, got '
                             f'{missing!r}')
        self.num_parts = num_parts
        self.missing = missing
        self.max_aspect_diff = max_aspect_diff

    def transform(self, results: dict) -> Optional[dict]:
        path = results.get('seg_map_path')
        img = results.get('img')
        img_hw = img.shape[:2] if img is not None else None
        if path is None:
            raise EVLabError(
                f'LoadPartMap: the dataset gives no part map for '
                f'{results.get("img_path")!r}; set its parsing_root')
        if not osp.isfile(path):
            if self.missing == 'error':
                raise EVLabError(
                    f'part map {path!r} (for {results.get("img_path")!r}) '
                    f'does not exist; generate the part maps, or set '
                    f'LoadPartMap(missing=\'zeros\') to use empty maps')
            shape = img_hw if img_hw is not None else (1, 1)
            part = np.zeros(shape, np.uint8)
        else:
            part = mmcv.imread(path, flag='unchanged')
            if part is None:
                raise EVLabError(f'part map {path!r} cannot be read as an '
                                 f'image')
            if part.ndim != 2:
                raise EVLabError(
                    f'part map {path!r} has shape {part.shape}: it must be '
                    f'a single-channel PNG of labels')
            bad = (part >= self.num_parts) & (part != 255)
            if bad.any():
                raise EVLabError(
                    f'part map {path!r} holds label {int(part[bad].max())}; '
                    f'labels must lie in [0, {self.num_parts}) (or be 255)')
            if img_hw is not None:
                ratio_img = img_hw[0] / img_hw[1]
                ratio_map = part.shape[0] / part.shape[1]
                if abs(ratio_map / ratio_img - 1) > self.max_aspect_diff:
                    raise EVLabError(
                        f'part map {path!r} is {part.shape[0]}x'
                        f'{part.shape[1]} but its image is {img_hw[0]}x'
                        f'{img_hw[1]}: a different aspect ratio, so it '
                        f'cannot belong to this image')
        results['gt_seg_map'] = part
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_parts={self.num_parts}, '
                f'missing={self.missing!r})')


@TRANSFORMS.register_module()
class PackP2NetInputs(PackInputs):
    """``PackInputs`` for re-ID: the part map as ``gt_part_map`` (int64,
    H x W) and the identity fields in the metainfo.

    Args:
        meta_keys (tuple[str]): Metainfo keys. Defaults to mmpretrain's
            plus ``pid``, ``camid`` and ``is_query``.
    """

    META_KEYS = PackInputs.DEFAULT_META_KEYS + ('pid', 'camid', 'is_query')

    def __init__(self, meta_keys=META_KEYS, **kwargs):
        super().__init__(meta_keys=meta_keys, **kwargs)

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        part = results.get('gt_seg_map')
        if part is not None:
            packed['data_samples'].set_field(
                torch.from_numpy(np.ascontiguousarray(part).astype(np.int64)),
                'gt_part_map', field_type='data')
        return packed

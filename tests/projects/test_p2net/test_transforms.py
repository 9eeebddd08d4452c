# Copyright (c) EVLab contributors.
"""Part maps through the pipeline: read, resized and flipped with the
image (spec 5, "mask alignment"), and bad part maps named."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from projects.common.errors import EVLabError
from projects.p2net import LoadPartMap  # noqa: F401 (registers)

#: a colour per part label: the image encodes its own map
COLOURS = np.array([[0, 0, 0], [250, 0, 0], [0, 250, 0], [0, 0, 250],
                    [250, 250, 0]], np.uint8)


def make_pair(tmp_path, h=96, w=40, map_hw=None):
    """An image whose colour encodes its part label, and its part map: an
    asymmetric layout (left and right halves differ), so a flip shows."""
    part = np.zeros((h, w), np.uint8)
    part[5:20, 4:30] = 1
    part[20:60, 2:20] = 2
    part[20:60, 20:38] = 3
    part[60:90, 10:36] = 4
    img = COLOURS[part]
    img_path = osp.join(tmp_path, 'img.png')
    Image.fromarray(img).save(img_path)
    map_path = osp.join(tmp_path, 'part.png')
    saved = part if map_hw is None else np.asarray(
        Image.fromarray(part).resize(map_hw[::-1], Image.NEAREST))
    Image.fromarray(saved).save(map_path)
    return dict(img_path=img_path, seg_map_path=map_path), part


def pipeline(flip_prob):
    from mmcv.transforms import Compose
    from mmpretrain.registry import TRANSFORMS
    init_default_scope('mmpretrain')
    return Compose([TRANSFORMS.build(t) for t in [
        dict(type='LoadImageFromFile'),
        dict(type='LoadPartMap', num_parts=5),
        dict(type='Resize', scale=(32, 64), keep_ratio=False,
             interpolation='bicubic'),
        dict(type='RandomFlip', prob=flip_prob, direction='horizontal'),
        dict(type='PackP2NetInputs'),
    ]])


@pytest.mark.parametrize('map_hw', [None, (48, 20)])
def test_flip_moves_the_map_with_the_image(tmp_path, map_hw):
    info, part = make_pair(tmp_path, map_hw=map_hw)
    plain = pipeline(0.0)(dict(info))
    flipped = pipeline(1.0)(dict(info))
    m0 = plain['data_samples'].gt_part_map
    m1 = flipped['data_samples'].gt_part_map
    assert m0.shape == (64, 32) and m0.dtype.is_floating_point is False
    assert flipped['data_samples'].flip is True
    assert (m1 == m0.flip(-1)).all()  # the map flips with the image
    assert (flipped['inputs'] == plain['inputs'].flip(-1)).all()
    # the map is the nearest resize (cv2's, as mmcv's Resize) of the saved
    # map, whatever its size
    saved = np.asarray(Image.open(info['seg_map_path']))
    want = cv2.resize(saved, (32, 64), interpolation=cv2.INTER_NEAREST)
    assert (m0.numpy() == want).all()


def test_image_colour_agrees_with_its_map_pixel_for_pixel(tmp_path):
    info, _ = make_pair(tmp_path)
    out = pipeline(1.0)(dict(info))
    img = out['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR -> RGB
    label = out['data_samples'].gt_part_map.numpy()
    # the colour whose label each pixel's map gives is the nearest colour
    dist = np.abs(img[:, :, None].astype(int) - COLOURS[None, None]).sum(-1)
    nearest = dist.argmin(-1)
    # bicubic blurs edges: inside the regions (not at borders) all agree
    inner = np.ones_like(label, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inner &= np.roll(label, (dy, dx), (0, 1)) == label
    assert inner.mean() > 0.5
    assert (nearest[inner] == label[inner]).all()


def test_missing_map_is_an_error_or_zeros(tmp_path):
    info, _ = make_pair(tmp_path)
    os.remove(info['seg_map_path'])
    with pytest.raises(EVLabError, match='part.png.*does not exist'):
        pipeline(0.0)(dict(info))
    from mmpretrain.registry import TRANSFORMS
    load = TRANSFORMS.build(dict(type='LoadPartMap', missing='zeros'))
    img = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    out = load(img(dict(info)))
    assert out['gt_seg_map'].shape == (96, 40) and not out['gt_seg_map'].any()


def test_bad_maps_are_named(tmp_path):
    info, _ = make_pair(tmp_path, map_hw=(40, 40))  # another aspect ratio
    with pytest.raises(EVLabError, match='aspect ratio'):
        pipeline(0.0)(dict(info))
    info, part = make_pair(tmp_path)
    bad = part.copy()
    bad[0, 0] = 7
    Image.fromarray(bad).save(info['seg_map_path'])
    with pytest.raises(EVLabError, match='label 7'):
        pipeline(0.0)(dict(info))
    Image.fromarray(COLOURS[part]).save(info['seg_map_path'])  # RGB
    with pytest.raises(EVLabError, match='single-channel'):
        pipeline(0.0)(dict(info))

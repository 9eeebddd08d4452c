# Copyright (c) EVLab contributors.
"""DeFeat's per-level object masks against hand-drawn cases (spec 2.1)."""
import pytest
import torch

from projects.defeat import assign_levels, gt_level_masks

SIZES_256 = [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
STRIDES_FRCNN = [4, 8, 16, 32, 64]


def test_spec_worked_example():
    boxes = torch.tensor([[10., 20., 50., 60.], [0., 0., 150., 120.],
                          [100., 100., 101., 101.], [0., 0., 255., 255.]])
    assert assign_levels(boxes, 5).tolist() == [0, 1, 0, 2]
    masks = gt_level_masks([boxes], SIZES_256, STRIDES_FRCNN)
    assert [int(m.sum()) for m in masks] == [101, 270, 225, 0, 0]
    expected0 = torch.zeros(64, 64)
    expected0[5:15, 2:12] = 1
    expected0[25, 25] = 1  # the degenerate box: one pixel
    assert torch.equal(masks[0][0], expected0)
    expected1 = torch.zeros(32, 32)
    expected1[0:15, 0:18] = 1
    assert torch.equal(masks[1][0], expected1)
    expected2 = torch.zeros(16, 16)
    expected2[0:15, 0:15] = 1
    assert torch.equal(masks[2][0], expected2)


def test_horizontal_boxes_give_the_same_masks():
    from mmdet.structures.bbox import HorizontalBoxes
    boxes = torch.tensor([[10., 20., 50., 60.], [0., 0., 150., 120.]])
    a = gt_level_masks([boxes], SIZES_256, STRIDES_FRCNN)
    b = gt_level_masks([HorizontalBoxes(boxes)], SIZES_256, STRIDES_FRCNN)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize('side,level', [(111, 0), (112, 1), (223, 1),
                                        (224, 2), (447, 2), (448, 3),
                                        (2000, 4)])
def test_level_boundaries(side, level):
    # sqrt((w + 1) * (h + 1)): boxes under 112 px go to level 0, 112-224
    # to level 1, ...; the top level takes everything larger
    box = torch.tensor([[0., 0., side - 1., side - 1.]])
    assert assign_levels(box, 5).item() == level
    assert assign_levels(box, 5, legacy_plus_one=False).item() == (
        level if side != 112 and side != 224 and side != 448 else level - 1)


def test_box_at_the_border_is_clipped_to_the_map():
    # a box past the right/bottom edge (e.g. after flip rounding) stops at
    # the map's edge; one starting on the last pixel marks that pixel
    boxes = torch.tensor([[200., 230., 300., 300.], [255., 255., 260., 262.]])
    masks = gt_level_masks([boxes], SIZES_256, STRIDES_FRCNN)
    expected = torch.zeros(64, 64)
    expected[57:64, 50:64] = 1
    expected[63, 63] = 1
    assert assign_levels(boxes, 5).tolist() == [0, 0]
    assert torch.equal(masks[0][0], expected)


def test_degenerate_boxes_mark_one_pixel():
    # zero-size and sub-stride boxes truncate to an empty slice
    boxes = torch.tensor([[9., 9., 9., 9.], [17., 3., 18., 30.]])
    masks = gt_level_masks([boxes], SIZES_256, STRIDES_FRCNN)
    expected = torch.zeros(64, 64)
    expected[2, 2] = 1  # (9 / 4, 9 / 4)
    expected[0, 4] = 1  # width truncates to nothing: pixel (ly, lx)
    assert torch.equal(masks[0][0], expected)


def test_padding_and_per_image_masks():
    # image 0 is 120x150 inside a 128x160 padded batch, image 1 has no
    # box: masks are built on the padded map and only where the boxes are
    sizes = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
    boxes0 = torch.tensor([[8., 8., 40., 24.], [0., 0., 149., 119.]])
    masks = gt_level_masks([boxes0, torch.zeros(0, 4)], sizes,
                           STRIDES_FRCNN)
    assert [tuple(m.shape) for m in masks] == [(2, h, w) for h, w in sizes]
    expected0 = torch.zeros(32, 40)
    expected0[2:6, 2:10] = 1
    expected1 = torch.zeros(16, 20)
    expected1[0:14, 0:18] = 1  # sqrt(150 * 120) = 134.2 -> level 1
    assert torch.equal(masks[0][0], expected0)
    assert torch.equal(masks[1][0], expected1)
    assert all(m[1].sum() == 0 for m in masks)
    assert all(m[0].sum() == 0 for m in masks[2:])


def test_retinanet_strides():
    # P3-P7 (strides 8-128) use the same level rule
    sizes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    boxes = torch.tensor([[0., 0., 39., 39.], [0., 0., 149., 149.]])
    masks = gt_level_masks([boxes], sizes, [8, 16, 32, 64, 128])
    assert [int(m.sum()) for m in masks] == [4 * 4, 9 * 9, 0, 0, 0]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match='strides'):
        gt_level_masks([torch.zeros(1, 4)], SIZES_256, [4, 8])
    with pytest.raises(ValueError, match=r'\(K, 4\)'):
        gt_level_masks([torch.zeros(3)], SIZES_256, STRIDES_FRCNN)

# Copyright (c) EVLab contributors.
"""The convolutional stem: its stride and its receptive field; the
centre pooling neck: the cells it averages."""
import pytest
import torch

from projects.common.cnn_embed import (
    CentreAveragePooling,
    CNNPatchEmbed,
    ConvStem,
)


def test_conv_stem_stride_and_receptive_field():
    torch.manual_seed(0)
    stem = ConvStem(channels=(4, 8, 16)).eval()
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    y = stem(x)
    assert y.shape == (1, 16, 8, 8)
    # the input pixels that one output cell depends on: 15 x 15
    y[0, :, 4, 4].sum().backward()
    rows, cols = x.grad[0].abs().sum(0).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == 15
    assert cols.max() - cols.min() + 1 == 15
    assert (rows.min(), cols.min()) == (25, 25)  # 8 * 4 - 7


def test_conv_stem_as_patch_embedding():
    embed = CNNPatchEmbed(dict(type='ConvStem', channels=(4, 8, 16)),
                          embed_dims=32, in_channels=3, img_size=(64, 64),
                          patch_size=8)
    tokens, hw = embed(torch.randn(2, 3, 64, 64))
    assert tokens.shape == (2, 64, 32) and hw == (8, 8)


def test_centre_pooling_averages_the_central_cells():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float64).reshape(2, 3, 8, 8)
    out, = CentreAveragePooling(4)(x)
    # by hand: rows and columns 2..5 of each channel
    expected = torch.stack([torch.stack([
        sum(x[b, c, i, j] for i in range(2, 6) for j in range(2, 6)) / 16
        for c in range(3)]) for b in range(2)])
    assert torch.equal(out, expected)
    # a tuple of maps (an mmpretrain backbone's outputs): one per map
    outs = CentreAveragePooling((2, 4))((x, x[..., :6, :6]))
    assert outs[0].shape == (2, 3)
    assert torch.equal(outs[0], x[..., 3:5, 2:6].mean((-2, -1)))
    assert torch.equal(outs[1], x[..., 2:4, 1:5].mean((-2, -1)))


@pytest.mark.parametrize('size,shape', [(3, (8, 8)), (10, (8, 8))])
def test_centre_pooling_refuses_a_window_it_cannot_centre(size, shape):
    with pytest.raises(ValueError, match=f'{size}x{size} window'):
        CentreAveragePooling(size)(torch.zeros(1, 2, *shape))

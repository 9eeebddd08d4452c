# Copyright (c) EVLab contributors.
"""The convolutional stem: its stride and its receptive field."""
import torch

from projects.common.cnn_embed import CNNPatchEmbed, ConvStem


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

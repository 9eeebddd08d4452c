# GhostNet 1.3x on ImageNet-1k, the recipe of ghostnet-1.0x_8xb128_in1k.py.
# Expected top-1 / params / MACs: 75.7 / 7.3M / 226M (paper).
_base_ = ['./ghostnet-1.0x_8xb128_in1k.py']
model = dict(
    backbone=dict(widen_factor=1.3),
    head=dict(in_channels=1248))  # make_divisible(960 * 1.3, 4)

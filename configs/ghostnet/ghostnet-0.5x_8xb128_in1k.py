# GhostNet 0.5x on ImageNet-1k, the recipe of ghostnet-1.0x_8xb128_in1k.py.
# Expected top-1 / params / MACs: 66.2 / 2.6M / 42M (paper).
_base_ = ['./ghostnet-1.0x_8xb128_in1k.py']
model = dict(
    backbone=dict(widen_factor=0.5),
    head=dict(in_channels=480))  # make_divisible(960 * 0.5, 4)

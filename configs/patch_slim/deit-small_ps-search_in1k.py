# Patch Slimming search on ImageNet-1k for DeiT-S (79.9, 4.60 G MACs) at a
# 2.6 G MACs budget; the settings of deit-tiny_ps-search_in1k.py.
# Paper: 79.8 / 4.6 G -> 79.4 / 2.6 G after the fine-tune.
#   python tools/train.py configs/patch_slim/deit-small_ps-search_in1k.py
_base_ = ['./deit-tiny_ps-search_in1k.py']
model = dict(
    backbone=dict(arch='deit-small'),
    head=dict(in_channels=384))
train_cfg = dict(
    dense_checkpoint='checkpoints/deit-small_in1k.pth',
    budget=2_600_000_000)

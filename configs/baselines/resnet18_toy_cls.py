# Plain ResNet-18 classifier at half width (stages of 32-256 channels,
# from scratch) on the toy classification set (64x64 images, 10
# classes). Expected: see configs/baselines/README.md.
_base_ = [
    'mmpretrain::_base_/models/resnet18.py',
    '../_base_/datasets/toy_cls.py',
    'mmpretrain::_base_/default_runtime.py',
]
model = dict(
    backbone=dict(stem_channels=32, base_channels=32),
    head=dict(num_classes=10, in_channels=256, topk=(1, 5)))

train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=5)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=15,
         convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=5, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=32)
randomness = dict(seed=0)

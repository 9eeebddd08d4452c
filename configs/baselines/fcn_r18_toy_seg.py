# Plain FCN with a half-width ResNetV1c-18 D16 backbone (stages of 32-256
# channels, from scratch) on the toy segmentation set. Expected: see
# configs/baselines/README.md.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    '../_base_/datasets/toy_seg.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs GPUs
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # from scratch: no pretrained weights here
    backbone=dict(
        depth=18,
        stem_channels=32,
        base_channels=32,
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=256, channels=64, num_classes=6, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=128, channels=32, num_classes=6, norm_cfg=norm_cfg))

max_iters = 600
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=300)
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=300, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=8)
randomness = dict(seed=0)

# Toy DeFeat, step 1: the teacher. RetinaNet, ResNet-18 and a 64-channel
# FPN/head from scratch on the toy COCO set, 8 epochs (the schedule of the
# whole toy story). `make demo` trains it; by hand:
#   python tools/train.py configs/defeat/toy_retinanet_teacher.py
# Measured: see projects/defeat/README.md (toy results).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/toy_det.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(
    backbone=dict(
        depth=18,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),  # from scratch: no pretrained weights here
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
    bbox_head=dict(
        num_classes=5,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        # anchors of 16..256 px over P3..P7 for objects of 8..150 px
        anchor_generator=dict(octave_base_scale=2)),
    test_cfg=dict(max_per_img=50))

max_epochs = 8
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=0)

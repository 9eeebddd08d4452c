# Toy DeFeat, step 1: the teacher. RetinaNet, ResNet-18 and a 64-channel
# FPN/head from scratch on the toy COCO set, 8 epochs (the schedule of the
# whole toy story). `make demo` trains it; by hand:
#   python tools/train.py configs/defeat/toy_retinanet_teacher.py
# Measured: see projects/defeat/README.md (toy results).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/toy_det.py',
    '../_base_/schedules/toy_det_8e.py',
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
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=8, max_keep_ckpts=1))  # at the end

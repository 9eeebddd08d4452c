# Toy DeFeat, step 1: the teacher. RetinaNet, ResNet-18 at half width
# (32 base channels) with a 64-channel FPN and a GroupNorm head, from
# scratch on toy_det v3, 12 epochs (the schedule of the whole toy story).
# The head's GroupNorm is what lets a from-scratch RetinaNet learn in CPU
# minutes (0.23 vs 0.11 bbox mAP for the same teacher without it on an
# earlier draft of the data, projects/defeat/README.md). `make demo`
# trains it; by hand:
#   python tools/train.py configs/defeat/toy_retinanet_teacher.py
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/toy_det.py',
    '../_base_/schedules/toy_det_12e.py',
    'mmdet::_base_/default_runtime.py',
]
model = dict(
    backbone=dict(
        depth=18,
        base_channels=32,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),  # from scratch: no pretrained weights here
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    bbox_head=dict(
        num_classes=5,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        # anchors of 16..256 px over P3..P7; the toy objects (16..96 px)
        # fall on P3, P4 and P5
        anchor_generator=dict(octave_base_scale=2)),
    test_cfg=dict(max_per_img=50))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=12, max_keep_ckpts=1))  # at the end

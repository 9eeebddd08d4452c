# Plain RetinaNet-R18 (from scratch, 64-channel FPN and head) on the toy
# detection set (toy_det v3): the plain detector baseline that
# detection methods are compared against. Expected: see configs/baselines/
# README.md (bbox mAP after the 12-epoch CPU schedule).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/toy_det.py',
    '../_base_/schedules/toy_det_12e.py',
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
        # anchors of 16..256 px over P3..P7 (toy_det v3 objects: 16..96 px)
        anchor_generator=dict(octave_base_scale=2)),
    test_cfg=dict(max_per_img=50))

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=4, max_keep_ckpts=2))

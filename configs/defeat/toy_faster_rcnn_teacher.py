# Toy DeFeat for two-stage detectors, the teacher: Faster R-CNN, ResNet-18
# at half width (32 base channels) and a 64-channel FPN from scratch on
# toy_det v3, the 12-epoch schedule of the RetinaNet story:
#   python tools/train.py configs/defeat/toy_faster_rcnn_teacher.py
# or the whole story: python tools/misc/demo.py --detector faster_rcnn
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
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
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        # anchors of 16..256 px over P2..P6; the toy objects (16..96 px)
        # fall on P2, P3 and P4
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=5)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=12, max_keep_ckpts=1))  # at the end

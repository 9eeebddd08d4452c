# Toy DeFeat for two-stage detectors, the teacher: Faster R-CNN, ResNet-18
# and a 64-channel FPN from scratch on the toy COCO set, same 8-epoch
# schedule as the RetinaNet story:
#   python tools/train.py configs/defeat/toy_faster_rcnn_teacher.py
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
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
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        # anchors of 16..256 px over P2..P6 for objects of 8..150 px
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
    logger=dict(interval=10),
    checkpoint=dict(interval=8, max_keep_ckpts=1))  # at the end

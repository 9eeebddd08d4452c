# Toy DeFeat for two-stage detectors, the student alone: the teacher's
# Faster R-CNN at a quarter of the width (ResNet-18 with 16 base channels,
# 32-channel FPN), same data, schedule and seed as the distilled run.
_base_ = ['./toy_faster_rcnn_teacher.py']
model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=128)))

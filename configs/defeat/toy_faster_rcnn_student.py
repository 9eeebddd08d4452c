# Toy DeFeat for two-stage detectors, the student alone: the teacher's
# Faster R-CNN at half its width (ResNet-18 with 16 base channels,
# 32-channel FPN), same data, schedule and seed as the distilled run; like
# the RetinaNet student, half the teacher's schedule (6 epochs).
_base_ = ['./toy_faster_rcnn_teacher.py']
model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=128)))
train_cfg = dict(max_epochs=6, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=6,
         convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=6))

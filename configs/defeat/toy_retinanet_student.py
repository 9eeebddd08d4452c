# Toy DeFeat, step 2: the student alone. The teacher's RetinaNet at a
# quarter of the width (ResNet-18 with 16 base channels, 32-channel
# FPN/head), same data, schedule and seed as the distilled run:
#   python tools/train.py configs/defeat/toy_retinanet_student.py
_base_ = ['./toy_retinanet_teacher.py']
model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32))

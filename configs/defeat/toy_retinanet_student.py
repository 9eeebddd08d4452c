# Toy DeFeat, step 2: the student alone. The teacher's RetinaNet at half
# its width (ResNet-18 with 16 base channels, 32-channel FPN and GroupNorm
# head; 1/4 of the teacher's MACs), same data, schedule and seed as the
# distilled run:
#   python tools/train.py configs/defeat/toy_retinanet_student.py
_base_ = ['./toy_retinanet_teacher.py']
model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    bbox_head=dict(in_channels=32, feat_channels=32))
# Half the teacher's schedule: 6 epochs (the teacher is trained once and
# reused; the students are what the demo trains every time).
train_cfg = dict(max_epochs=6, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=6,
         convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=6))

# DeFeat, RetinaNet, 1x variant: R101-FPN 1x teacher (mmdet zoo, 38.5 mAP)
# -> R50-FPN student, COCO 2017, 12 epochs (steps 8/11), otherwise as
# retinanet_r50.py. Expected: above the R50 1x baseline of 36.5 (the paper
# reports 39.7 for its, probably 2x, schedule).
_base_ = './retinanet_r50.py'
model = dict(
    teacher='mmdet::retinanet/retinanet_r101_fpn_1x_coco.py',
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'  # noqa: E501
)
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]

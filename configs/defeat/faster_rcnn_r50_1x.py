# DeFeat, Faster R-CNN, 1x variant: R101-FPN 1x teacher (mmdet zoo, 39.4 mAP)
# -> R50-FPN student, COCO 2017, 12 epochs (steps 8/11), otherwise as
# faster_rcnn_r50.py. Expected: above the R50 1x baseline of 37.4.
_base_ = './faster_rcnn_r50.py'
model = dict(
    teacher='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'  # noqa: E501
)
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]

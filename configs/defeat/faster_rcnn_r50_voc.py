# DeFeat, the official VOC replica: Faster R-CNN R101-FPN teacher (82.27
# mAP@0.5 in the official README) -> R50-FPN, VOC07+12 (RepeatDataset x3),
# 4 epochs with the step at 3, 1000x600, 2 GPUs x 8 images, lr 0.01, grad
# clip 35, warm-up 200 iterations, neck loss alpha 3 / 12; the RoI KL is
# configured (beta 2 / 2, T 1) but off, as released.
# Expected: VOC07 test mAP@0.5 ~82.0 (official README: 82.04; student
# alone 80.52). The teacher checkpoint is not public: train
# mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py with depth=101 and
# pass model.teacher_ckpt=...
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['projects.defeat'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='DeFeatDistiller',
    student={{_base_.model}},
    teacher=dict(
        cfg_path='mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py',
        backbone=dict(depth=101, init_cfg=None)),
    teacher_ckpt='work_dirs/faster_rcnn_r101_fpn_voc0712/epoch_4.pth',
    alpha_obj=3.0,
    alpha_bg=12.0,
    roi_kd=False,
    beta_obj=2.0,
    beta_bg=2.0,
    temperature=1.0)
# the mmdet VOC base already resizes to 1000x600 and repeats VOC07+12 x3
train_dataloader = dict(batch_size=8)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=200),
    dict(type='MultiStepLR', begin=0, end=4, by_epoch=True, milestones=[3],
         gamma=0.1)
]
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Hit-Detector (CVPR 2020), the released architecture: the searched
# backbone (fbnet_hit), neck (HitPAFPN, genes [7,7,6,5,5,7,7,5]) and RoI
# head (4 inverted residuals + one FC of 512) in a Faster R-CNN; COCO 2017,
# 1333x800, 12 epochs (steps 8/11), SGD 0.02 for 8 GPUs x 2 images, grad
# clip 35, 800 warm-up iterations from 0.1x, SyncBN, the released recipe
# (spec 3.3).
# Released: 41.3 box mAP, 27.6 M params (official README); the abstract
# says 41.4 / 27 M. Built here: 27,121,864 params (the spec's 27,121,848
# plus the stem conv's bias, which the released code has).
# Reproduction target: >= 40.8 box mAP on val2017 with the converted
# ImageNet backbone fbhit_7747.pth:
#   python tools/model_converters/hitdet_to_ours.py fbhit_7747.pth \
#       checkpoints/hitdet_backbone_in1k.pth
#   bash tools/dist_train.sh \
#       configs/hit_detector/hitdet_faster-rcnn_1x_coco.py 8
# Not reproduced here (no COCO, GPU or the BaiduCloud/Drive weights).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['projects.hit_detector'],
                      allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
backbone_ckpt = 'checkpoints/hitdet_backbone_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.HitBackbone',
        out_indices=(4, 8, 16, 22),
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint=backbone_ckpt,
                      prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='HitPAFPN',
        in_channels=[48, 96, 256, 2048],
        out_channels=256,
        genotype=[7, 7, 6, 5, 5, 7, 7, 5],
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0,
                       loss_weight=1.0)),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(type='RoIAlign', output_size=7,
                           sampling_ratio=2)),
        bbox_head=dict(
            _delete_=True,
            type='HitBBoxHead',
            blocks=['ir_k5_e6', 'ir_k3_e6', 'ir_k5_e6', 'ir_k5_e6'],
            norm_cfg=norm_cfg,
            in_channels=256,
            fc_out_channels=512,
            roi_feat_size=7,
            num_classes=80,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                          loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0,
                           loss_weight=1.0))),
    train_cfg=dict(rpn_proposal=dict(nms_pre=2000, max_per_img=2000)),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=1000)))

optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=800),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=[8, 11], gamma=0.1)
]
# the released recipe is 8 GPUs x 2 images: scale the lr for other sizes
auto_scale_lr = dict(enable=False, base_batch_size=16)

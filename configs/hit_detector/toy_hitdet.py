# Toy Hit-Detector, the released architecture at a quarter of its width
# (widen_factor 0.25, channels rounded to multiples of 8; neck and RoI
# blocks 64 wide, FC 128), from scratch with BN on toy_det v3 (128x128),
# the 12-epoch CPU schedule of the toy detection stories:
#   python tools/train.py configs/hit_detector/toy_hitdet.py
#   python tools/test.py configs/hit_detector/toy_hitdet.py \
#       work_dirs/toy_hitdet/epoch_12.pth
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/toy_det.py',
    '../_base_/schedules/toy_det_12e.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.hit_detector'],
                      allow_failed_imports=False)
norm_cfg = dict(type='BN')
# HitBackbone(widen_factor=0.25).channels at out_indices (4, 8, 16, 22)
backbone_channels = [16, 24, 64, 512]
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.HitBackbone',
        widen_factor=0.25,
        out_indices=(4, 8, 16, 22),
        norm_cfg=norm_cfg),
    neck=dict(
        _delete_=True,
        type='HitPAFPN',
        in_channels=backbone_channels,
        out_channels=64,
        genotype=[7, 7, 6, 5, 5, 7, 7, 5],
        num_outs=5,
        norm_cfg=norm_cfg),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        # anchors of 16..256 px over P2..P6 (the toy objects are 16..96 px)
        anchor_generator=dict(scales=[4]),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0,
                       loss_weight=1.0)),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=64,
            roi_layer=dict(type='RoIAlign', output_size=7,
                           sampling_ratio=2)),
        bbox_head=dict(
            _delete_=True,
            type='HitBBoxHead',
            blocks=['ir_k5_e6', 'ir_k3_e6', 'ir_k5_e6', 'ir_k5_e6'],
            norm_cfg=norm_cfg,
            in_channels=64,
            fc_out_channels=128,
            roi_feat_size=7,
            num_classes=5,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                          loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0,
                           loss_weight=1.0))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(max_per_img=50)))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=12, max_keep_ckpts=1))

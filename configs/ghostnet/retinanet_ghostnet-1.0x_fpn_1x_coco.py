# RetinaNet with a GhostNet 1.0x backbone on COCO, mmdet's 1x schedule
# (12 epochs, 8 GPUs x 2, SGD lr 0.01). No published figure: expected bbox
# mAP not stated by the paper. Set init_cfg to an ImageNet checkpoint made
# by tools/model_converters/ghostnet_to_evlab.py for real training.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['projects.ghostnet'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.GhostNet',
        widen_factor=1.0,
        out_indices=(2, 4, 6, 9),  # strides 4, 8, 16, 32
        frozen_stages=1,
        norm_eval=True,
        init_cfg=None),
    neck=dict(in_channels=[24, 40, 112, 960], start_level=1))

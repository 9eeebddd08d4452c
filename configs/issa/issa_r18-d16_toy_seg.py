# ISSAHead on the half-width ResNetV1c-18 D16 backbone of
# configs/baselines/fcn_r18_toy_seg.py (from scratch, same 600-iteration
# recipe), toy segmentation set. Results: projects/issa/README.md.
_base_ = ['../baselines/fcn_r18_toy_seg.py']
custom_imports = dict(imports=['projects.issa'], allow_failed_imports=False)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs GPUs
model = dict(
    decode_head=dict(
        _delete_=True,
        type='ISSAHead',
        in_channels=256,
        in_index=3,
        channels=64,
        isa_channels=32,
        # 8x8 maps at the 128x128 crops: 16 long-range groups of 2x2 and
        # 4 short-range groups of 4x4; the ~10x8 test maps are padded
        down_factor=(4, 4),
        dropout_ratio=0.1,
        num_classes=6,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))

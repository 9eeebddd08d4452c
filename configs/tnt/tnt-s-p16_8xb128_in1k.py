# TNT-S (official structure), ImageNet-1k from scratch, 224x224: 300 epochs,
# 8 GPUs x 128 (batch 1024), AdamW lr 1e-3 wd 0.05, 5-epoch warmup + cosine,
# drop path 0.1, label smoothing 0.1, RandAug m9-mstd0.5-inc1, mixup 0.8,
# cutmix 1.0, random erasing 0.25, repeated augmentation, EMA, AMP
# (the DeiT recipe of the paper / official release).
# Expected top-1: 81.3 (paper v1), 81.5 / 95.7 with the official weights
# (tnt_s_81.5, convert with tools/model_converters/tnt_to_evlab.py);
# 23.8M params, 5.2G MACs.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.tnt'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='TransformerInTransformer',
        arch='s',
        img_size=224,
        structure='official',
        drop_path_rate=0.1),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

# the official normalisation: (x - 127.5) / 127.5, not ImageNet mean / std
data_preprocessor = dict(
    num_classes=1000, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    # timm's rand-m9-mstd0.5-inc1; timm drops its colour jitter (0.4)
    # whenever RandAugment is on, so there is none here either
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[128] * 3, interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3, fill_color=[127.5] * 3,
         fill_std=[127.5] * 3),
    dict(type='PackInputs'),
]
# crop_pct 0.9: short side 248, bicubic, centre crop 224
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=248, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    dataset=dict(pipeline=train_pipeline),
    sampler=dict(_delete_=True, type='RepeatAugSampler', shuffle=True))
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# AdamW lr 1e-3 @ 1024, wd 0.05, eps 1e-8; no weight decay on norms,
# biases (every 1-D parameter), cls_token, patch_pos and pixel_pos
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.patch_pos': dict(decay_mult=0.0),
            '.pixel_pos': dict(decay_mult=0.0),
        }))
param_scheduler = [
    # warmup from 1e-6 (1e-3 x lr) over 5 epochs, per iteration
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=295, eta_min=1e-5, by_epoch=True,
         begin=5, end=300)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
# model EMA with decay 0.99996 (mmengine momentum = 1 - decay)
custom_hooks = [dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=1024)

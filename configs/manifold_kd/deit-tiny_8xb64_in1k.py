# DeiT-Tiny on ImageNet-1k WITHOUT distillation: the student of
# deit-tiny_cait-s24_manifold_8xb64_in1k.py with the same recipe (300
# epochs, 8 GPUs x 64, AdamW 5e-4 x batch/512, wd 0.05, 5 warmup epochs +
# cosine to 1e-5, drop-path 0, no grad clipping, AMP, RandAugment m9,
# random erasing 0.25, Mixup 0.8 / CutMix 1.0, label smoothing 0.1,
# repeated augmentation, EMA 0.99996 kept but not evaluated).
# Expected top-1: ~72.2 (DeiT-Ti, DeiT recipe; timm model zoo 72.19).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='deit-tiny',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.0),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=192,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
    # one of the two per batch (switch prob 0.5), always applied
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
    # inside the model too, so that the distiller configs that wrap it
    # build outside the Runner (ImageNet mean/std, RGB: DeiT and CaiT alike)
    data_preprocessor={{_base_.data_preprocessor}})

# batch 64 per GPU is part of the method (the inter-image term uses the
# per-GPU batch): change the GPU count, not the per-GPU batch
train_dataloader = dict(
    batch_size=64,
    sampler=dict(_delete_=True, type='RepeatAugSampler', shuffle=True))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-4, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999)),
    # timm: no weight decay on 1-D params (biases, norms), pos/cls tokens
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
param_scheduler = [
    # 5 warmup epochs from 1e-6 (= 0.002 x 5e-4), updated per iteration
    dict(type='LinearLR', start_factor=0.002, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5,
         end=300)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
# mmengine EMA: avg = (1 - m) * avg + m * param, so m = 1 - 0.99996;
# the official recipe evaluates the non-EMA model
custom_hooks = [
    dict(type='EMAHook', momentum=4e-5, evaluate_on_origin=True,
         priority='ABOVE_NORMAL')
]
auto_scale_lr = dict(base_batch_size=512)
# as the official main.py (seed + rank): each GPU draws its own Mixup and
# random manifold rows
randomness = dict(seed=0, diff_rank_seed=True)

# Toy manifold KD, step 2: the student alone (baseline). A tiny ViT
# (patch 16 on 64x64 -> 16 patches + cls, dim 64, depth 4, 2 heads) from
# scratch on the toy classification set, cross-entropy only. Same schedule
# and recipe as toy_vit_manifold.py:
#   python tools/train.py configs/manifold_kd/toy_vit_student.py
# 3-seed results: projects/manifold_kd/README.md.
_base_ = [
    '../_base_/datasets/toy_cls.py',
    'mmpretrain::_base_/default_runtime.py',
]
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=64, num_layers=4, num_heads=2,
            feedforward_channels=128),
        img_size=64,
        patch_size=16,
        drop_path_rate=0.0,
        init_cfg=None),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=.02),
        dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
    ],
    # inside the model, so that a distiller config built outside the
    # Runner has it too
    data_preprocessor={{_base_.data_preprocessor}})

max_epochs = 12
train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=80),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(base_batch_size=32)
randomness = dict(seed=0)

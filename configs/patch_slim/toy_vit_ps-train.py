# Patch Slimming on toy data, step 1: the dense model to prune. A small
# hybrid ViT (the ViT paper's hybrid, Sec. 3.1) on toy_glimpse, where the
# label belongs to the shape at the centre of the image among distractor
# shapes of random classes, so the class sits in a few tokens at a fixed
# place: the token-local conv stem of toy_glimpse_stem.py (trained first;
# a 15 px receptive field) embeds a 64x64 image as 8x8 tokens, plus the
# class token (65 tokens), then 6 blocks of width 128, 4 heads (10
# classes, chance 10%). ViTs whose embedding starts from scratch stay at
# chance on this set within a CPU budget (README).
#   python tools/train.py configs/patch_slim/toy_glimpse_stem.py
#   python tools/train.py configs/patch_slim/toy_vit_ps-train.py
# Next: toy_vit_ps-search.py. Results (3 seeds):
# projects/patch_slim/README.md.
_base_ = [
    '../_base_/datasets/toy_glimpse.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.patch_slim'],
                      allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PatchSlimViT',
        cnn=dict(
            type='ConvStem', channels=(32, 64, 128),
            init_cfg=dict(
                type='Pretrained',
                checkpoint='work_dirs/toy_glimpse_stem/epoch_8.pth',
                prefix='backbone.')),
        arch=dict(embed_dims=128, num_layers=6, num_heads=4,
                  feedforward_channels=256),
        img_size=64,
        patch_size=8,
        drop_path_rate=0.0,
        init_cfg=None),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        topk=(1, 5)),
    data_preprocessor={{_base_.data_preprocessor}})

train_dataloader = dict(batch_size=64)
max_epochs = 10
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
         end=40),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)

# Patch Slimming on toy data, step 0: a token-local embedding for the toy
# ViT. A 3-layer 3x3 stride-2 conv stem (ConvStem: one cell per 8x8
# patch, a 15 px receptive field) is trained as a classifier of
# toy_glimpse that reads only the central 4x4 cells (32x32 px, where the
# labelled shape lies), so its cells describe the shape fragments they
# see. ViTs with a linear or a conv-stem embedding trained from scratch
# stay at chance on toy_glimpse within a CPU budget; on this stem one
# learns in a few epochs (projects/patch_slim/README.md).
#   python tools/train.py configs/patch_slim/toy_glimpse_stem.py
# Next: toy_vit_ps-train.py.
_base_ = [
    '../_base_/datasets/toy_glimpse.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.patch_slim'],
                      allow_failed_imports=False)
stem_channels = (32, 64, 128)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ConvStem', channels=stem_channels),
    neck=dict(type='CentreAveragePooling', size=4),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=stem_channels[-1],
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        topk=(1, 5)),
    data_preprocessor={{_base_.data_preprocessor}})
train_dataloader = dict(batch_size=64)
max_epochs = 8
train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.04, by_epoch=False, begin=0,
         end=40),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)

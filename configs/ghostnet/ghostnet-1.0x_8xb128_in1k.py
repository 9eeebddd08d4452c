# GhostNet 1.0x on ImageNet-1k: 400 epochs, 8 GPUs x 128 (batch 1024),
# SGD nesterov lr 0.4, wd 4e-5 (none on BN/bias), label smoothing 0.1,
# dropout 0.2, 5-epoch warmup + cosine.
# Expected top-1 / params / MACs: 73.9 / 5.2M / 141M (paper); the official
# weights converted with tools/model_converters/ghostnet_to_evlab.py: 73.98.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_pil_resize.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.ghostnet'],
                      allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='GhostNet', widen_factor=1.0),
    neck=dict(type='GlobalAveragePooling'),
    # pool -> 1280 -> ReLU -> dropout -> FC, as the official head
    head=dict(
        type='StackedLinearClsHead',
        num_classes=1000,
        in_channels=960,  # make_divisible(960 * widen_factor, 4)
        mid_channels=[1280],
        dropout_rate=0.2,
        norm_cfg=None,
        act_cfg=dict(type='ReLU'),
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.4, momentum=0.9, nesterov=True, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=395, eta_min=0.0, by_epoch=True,
         begin=5, end=400)
]
train_cfg = dict(by_epoch=True, max_epochs=400, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)

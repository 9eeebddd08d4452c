# P2Net baseline (no DPB) on Market-1501: ResNet-50 with last stride 1
# (ImageNet V1 weights), global average pool -> pool5 (2048-d), the
# ClassBlock head (2048 -> 256 -> 751 ids), softmax cross-entropy only.
# Recipe (the official code, spec 3): 384x128, batch 48 on 1 GPU, SGD
# nesterov, momentum 0.9, wd 5e-4, lr 0.1 for the head and 0.01 for the
# backbone (lr_mult 0.1), 60 epochs, x0.1 at epoch 40; test features: pool5
# summed over the image and its flip, L2-normalised, cosine distance.
# Target: no Market figure of the baseline is published; the official
# README's Duke baseline is 81.10 Rank-1 / 64.87 mAP. The DPB config must beat
# this one by >= +1.0 mAP with Rank-1 not lower (spec 4).
_base_ = [
    '../_base_/datasets/market1501.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.p2net'], allow_failed_imports=False)
model = dict(
    type='P2NetReID',
    backbone=dict(
        type='ResNet',
        depth=50,
        strides=(1, 2, 2, 1),  # last stride 1: 24x8 maps at layer4
        out_indices=(3, ),
        style='pytorch',
        # torchvision's ImageNet-1k V1 weights (76.13 top-1; the official
        # code's resnet50-19c8e357.pth, which torchvision now serves as
        # resnet50-0676ba61.pth)
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet50')),
    dpb_stages=(),
    use_latent=False,
    use_human=False,
    head=dict(type='P2NetClsHead', num_classes=751, in_channels=2048,
              embed_channels=256),
    test_cfg=dict(flip=True))
# no part maps are read (the DPB config reads them)
train_dataloader = dict(
    dataset=dict(parsing_root=None, pipeline=_base_.image_train_pipeline))
val_dataloader = dict(
    dataset=dict(parsing_root=None, pipeline=_base_.image_test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True,
                   weight_decay=5e-4),
    # the official split: 0.01 for the backbone, 0.1 for blocks and head
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[40],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='reid/mAP',
                    rule='greater'))
auto_scale_lr = dict(base_batch_size=48)

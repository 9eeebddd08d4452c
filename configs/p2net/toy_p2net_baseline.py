# The P2Net baseline (no DPB) on the toy re-ID set (Market-1501 layout, 80
# train ids, 128x64 images; configs/_base_/datasets/toy_reid.py): ResNet-18
# at quarter width (16-128 channels, last stride 1, from scratch), the
# ClassBlock head (128 -> 64 -> 80 ids), softmax cross-entropy, pool5 test
# features summed with the flip. The same model code, dataset class,
# pipeline and metric as p2net_r50_baseline_1xb48-60e_market1501.py; the
# schedule is shorter and, with no pretrained backbone, the backbone trains
# at the full lr. Results (3 seeds): projects/p2net/README.md.
_base_ = [
    '../_base_/datasets/toy_reid.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.p2net'], allow_failed_imports=False)
model = dict(
    type='P2NetReID',
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 2, 1),
        out_indices=(3, ),
        style='pytorch'),
    dpb_stages=(),
    use_latent=False,
    use_human=False,
    head=dict(type='P2NetClsHead', num_classes=80, in_channels=128,
              embed_channels=64),
    test_cfg=dict(flip=True))
train_dataloader = dict(
    dataset=dict(parsing_root=None, pipeline=_base_.image_train_pipeline))
val_dataloader = dict(
    dataset=dict(parsing_root=None, pipeline=_base_.image_test_pipeline))
test_dataloader = val_dataloader
max_epochs = 30
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, nesterov=True,
                   weight_decay=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[20],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
randomness = dict(seed=0)

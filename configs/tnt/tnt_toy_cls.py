# A small TNT (official structure; c = 12 / 2 heads, d = 96 / 3 heads,
# depth 2, 64x64 inputs: 16 patches of 16 words) from scratch on the toy
# classification set (10 classes, chance 10%), next to
# configs/baselines/resnet18_toy_cls.py. Like other small transformers
# from scratch on 2,600 images it sits near chance for the first ~10
# epochs, then learns: 40 epochs with a 5-epoch warmup (AdamW 3e-4).
# Results: projects/tnt/README.md.
_base_ = ['../baselines/resnet18_toy_cls.py']
custom_imports = dict(imports=['projects.tnt'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='TransformerInTransformer',
        arch=dict(inner_dims=12, inner_heads=2, embed_dims=96, num_heads=3,
                  depth=2),
        img_size=64,
        drop_path_rate=0.),
    neck=None,
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=10,
        in_channels=96,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=3e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.patch_pos': dict(decay_mult=0.0),
            '.pixel_pos': dict(decay_mult=0.0),
        }))
max_epochs = 40
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=400),  # ~5 epochs of 82 iterations
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))

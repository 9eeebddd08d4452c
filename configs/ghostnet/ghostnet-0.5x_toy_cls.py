# GhostNet 0.5x (from scratch) on the toy classification set, 64x64 inputs,
# next to configs/baselines/resnet18_toy_cls.py. Results:
# projects/ghostnet/README.md.
_base_ = ['../baselines/resnet18_toy_cls.py']
custom_imports = dict(imports=['projects.ghostnet'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(_delete_=True, type='GhostNet', widen_factor=0.5),
    head=dict(
        _delete_=True,
        type='StackedLinearClsHead',
        num_classes=10,
        in_channels=480,
        mid_channels=[1280],
        dropout_rate=0.2,
        norm_cfg=None,
        act_cfg=dict(type='ReLU'),
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, nesterov=True,
                   weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))

# HourNAS stage 1 on toy data (spec 2.3): train the vital-only supernet
# (non-vital blocks are the identity) with single-path uniform sampling.
# Next: toy_hournas_stage1-search.py. Pipeline and figures:
# projects/hournas/README.md.
_base_ = ['./_toy_base.py']
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
max_epochs = 30
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
         T_max=max_epochs, convert_to_iter_based=True)
]
custom_hooks = [
    dict(type='SinglePathSamplerHook', input_shape={{ _base_.input_shape }})
]

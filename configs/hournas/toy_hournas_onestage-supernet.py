# The one-stage baseline of the HourNAS toy evidence: one supernet over
# the whole space (vital and non-vital blocks searched together), trained
# 60 epochs (HourNAS's two supernets train 30 + 10), single-path
# sampling with paths above the budget redrawn. Next:
# toy_hournas_onestage-search.py. Figures: projects/hournas/README.md.
_base_ = ['./toy_hournas_stage1-supernet.py']
model = dict(backbone=dict(mode='full', search_vital=True))
max_epochs = 60
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
         T_max=max_epochs, convert_to_iter_based=True)
]
custom_hooks = [
    dict(type='SinglePathSamplerHook', max_macs={{ _base_.budget }},
         input_shape={{ _base_.input_shape }})
]

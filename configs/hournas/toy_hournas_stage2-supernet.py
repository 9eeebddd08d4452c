# HourNAS stage 2 on toy data (spec 2.4): the vital ops fixed to stage 1's
# result (weights inherited), the non-vital space shrunk to what the rest
# of the budget affords (space.json), then single-path training drawn
# from the shrunk distribution. Next: toy_hournas_stage2-search.py.
_base_ = ['./toy_hournas_stage1-supernet.py']
model = dict(backbone=dict(
    mode='full',
    fixed_vital='work_dirs/toy_hournas_stage1-search/best_genotype.json'))
load_from = 'work_dirs/toy_hournas_stage1-supernet'
custom_hooks = [
    dict(type='HourNASPathSamplerHook', budget={{ _base_.budget }},
         input_shape={{ _base_.input_shape }})
]
# 10 epochs: it starts from stage 1's weights and trains only the
# non-vital positions' new ops; 30 cost a third more search time and
# retrained no better on three seeds (README, "Toy data")
max_epochs = 10
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
         T_max=max_epochs, convert_to_iter_based=True)
]

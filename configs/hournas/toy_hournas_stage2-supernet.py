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

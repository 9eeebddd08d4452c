# HourNAS stage 2 on ImageNet-1k (spec 2.4): vital ops fixed to stage 1's
# result with its weights, the non-vital space shrunk to the rest of B
# (space.json: tau 0.9, eta 1, lambda 100, Adam lr 0.05, 1,000 steps, ops
# below p 0.02 dropped), 5 epochs of single-path training drawn from it
# (paths above B redrawn up to 10 times), drop-connect 0.
_base_ = ['./hournas_stage1-supernet_in1k.py']
model = dict(backbone=dict(
    mode='full',
    fixed_vital='work_dirs/hournas_stage1-search_in1k/best_genotype.json'))
load_from = 'work_dirs/hournas_stage1-supernet_in1k'
custom_hooks = [
    dict(type='HourNASPathSamplerHook', budget={{ _base_.budget }},
         input_shape={{ _base_.input_shape }})
]

# Toy Hit-Detector search, stage A (screening, spec 2.3): the toy detector
# (toy_hitdet.py) as a supernet with linear gates over a 4-op space at one
# layer per backbone stage (layers 2, 6, 10, 14, 18), every neck cell and
# every RoI block; the gates step on the architecture half of the training
# images (odd positions), the weights on the other half, and the proximal
# group step after every gate step; the top K = 2 ops per component go to
# work_dirs/toy_hitdet_screen/sub_spaces.json. 2 epochs x 4 iterations of
# 2 images: a pipeline check, not a search that finds anything.
#   python tools/train.py configs/hit_detector/toy_hitdet_screen.py
# Next: toy_hitdet_search.py.
_base_ = ['./toy_hitdet.py']
model = dict(
    _delete_=True,
    type='HitDetSearcher',
    detector={{_base_.model}},
    op_space=['ir_k3_e3', 'ir_k5_e6', 'sd_k3_d1', 'conv_1x1'],
    searchable=dict(backbone=[2, 6, 10, 14, 18]),
    mode='gate',
    cost_input_size=128,
    lambdas=dict(backbone=5e-2, neck=5e-2, head=5e-2),
    top_k=dict(backbone=2, neck=2, head=2))

# the two halves of the training split: A for the weights, B for the gates
_few = dict(indices=16)
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(_delete_=True, type='HalfSplitSampler', part='A'),
    batch_sampler=None,
    dataset=_few)
train_cfg = dict(
    _delete_=True,
    type='HitSearchLoop',
    # the rest as train_dataloader
    arch_dataloader=dict(sampler=dict(type='HalfSplitSampler', part='B')),
    max_epochs=2,
    arch_warmup_epochs=1,
    val_interval=2)
val_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(indices=8))
test_dataloader = val_dataloader
optim_wrapper = dict(
    _delete_=True,
    constructor='HitSearchOptimWrapperConstructor',
    weights=dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
        clip_grad=dict(max_norm=10, norm_type=2)),
    # SGD on the gates, then the proximal group step (lr x lambda)
    arch=dict(type='OptimWrapper',
              optimizer=dict(type='SGD', lr=0.01, momentum=0.0)))
param_scheduler = dict(
    _delete_=True,
    weights=[dict(type='ConstantLR', factor=1.0, by_epoch=True)],
    arch=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
custom_hooks = [dict(type='HitSearchExportHook')]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=2))

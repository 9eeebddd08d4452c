# Hit-Detector search, stage A on COCO (screening, spec 2.3 / 3.4; a
# re-derivation: the search code was never released): the released
# skeleton as a supernet with linear gates over the whole 28-op space at
# backbone layers 1-21, the 8 neck cells and the 4 RoI blocks; 6 epochs
# (2 of weights only), 640x640, 8 GPUs x 1 image; weights SGD
# 0.02 x 8 / 16, gates SGD 0.01 with the proximal group step
# (lambda_c = 5e-4); train2017 split by image id into the weights' half
# and the gates' half. Writes work_dirs/hitdet_screen_coco/sub_spaces.json
# (K = 8 / 8 / 6 ops per component). Not run here (no COCO or GPU).
#   bash tools/dist_train.sh configs/hit_detector/hitdet_screen_coco.py 8
# Next: hitdet_search_coco.py.
_base_ = ['./hitdet_faster-rcnn_1x_coco.py']
model = dict(
    _delete_=True,
    type='HitDetSearcher',
    detector={{_base_.model}},
    op_space=None,  # the whole space (search.WHOLE_SPACE, 28 ops)
    mode='gate',
    cost_input_size=640,
    lambdas=dict(backbone=5e-4, neck=5e-4, head=5e-4),
    top_k=dict(backbone=8, neck=8, head=6))
# gates at 0 cut their ops out of the graph
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)

_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(640, 640), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=1,
    sampler=dict(_delete_=True, type='HalfSplitSampler', part='A'),
    batch_sampler=None,
    dataset=dict(pipeline=_pipeline))
max_epochs = 6
train_cfg = dict(
    _delete_=True,
    type='HitSearchLoop',
    # the rest as train_dataloader
    arch_dataloader=dict(sampler=dict(type='HalfSplitSampler', part='B')),
    max_epochs=max_epochs,
    arch_warmup_epochs=2,
    val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    constructor='HitSearchOptimWrapperConstructor',
    weights=dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                       weight_decay=1e-4),
        clip_grad=dict(max_norm=35, norm_type=2)),
    arch=dict(type='OptimWrapper',
              optimizer=dict(type='SGD', lr=0.01, momentum=0.0)))
param_scheduler = dict(
    _delete_=True,
    weights=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=800),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
             T_max=max_epochs, convert_to_iter_based=True)
    ],
    arch=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
custom_hooks = [dict(type='HitSearchExportHook')]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))

# The 12-epoch CPU schedule of the toy detection stories (DeFeat's teachers
# and students): 12 x 100 iterations of batch 8 on toy_det v3, AdamW 2e-3
# with warm-up and cosine decay, clip 10, validation every 4 epochs, seed
# 0. (default_hooks stay in the leaf configs: mmdet's default_runtime base
# defines them too, and bases may not share a key.)
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         convert_to_iter_based=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=0)

# Hit-Detector search, stage B on COCO (the trinity search, spec 2.3 /
# 3.4): the supernet over the screened sub-spaces of hitdet_screen_coco.py,
# softmax architecture weights, L_det + 0.02 C(alpha) / C_ref with the
# analytic MACs at 640x640 (RoI blocks x 1000 RoIs); 12 epochs (3 of
# weights only), 800x800, 8 GPUs x 2 images; weights SGD 0.02, the
# architecture Adam 3e-4 (betas 0.5 / 0.999, wd 1e-3). Writes genotype.json
# and retrain_config.py (the released config with the genotype) to
# work_dirs/hitdet_search_coco/. Not run here (no COCO or GPU).
#   bash tools/dist_train.sh configs/hit_detector/hitdet_search_coco.py 8
#   bash tools/dist_train.sh work_dirs/hitdet_search_coco/retrain_config.py 8
_base_ = ['./hitdet_screen_coco.py']
model = dict(
    mode='softmax',
    sub_spaces='work_dirs/hitdet_screen_coco/sub_spaces.json',
    gamma=0.02)
_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(800, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=_pipeline))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, arch_warmup_epochs=3,
                 val_interval=max_epochs)
optim_wrapper = dict(
    weights=dict(optimizer=dict(lr=0.02)),
    arch=dict(
        _delete_=True,
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=3e-4, betas=(0.5, 0.999),
                       weight_decay=1e-3)))
param_scheduler = dict(
    weights=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=800),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
             T_max=max_epochs, convert_to_iter_based=True)
    ])
custom_hooks = [
    dict(type='HitSearchExportHook',
         template='{{ fileDirname }}/hitdet_faster-rcnn_1x_coco.py')
]

# Market-1501 (Market-1501-v15.09.15) with CE2P part-parsing maps, as P2Net
# trains and tests on it (spec 2.4-2.5): 384x128 bicubic, flip 0.5 (image
# and map together), no random erasing; test = 3,368 queries, then the
# 15,913-image gallery (junk ids dropped at load; distractors kept).
# Layout: data/market1501/{bounding_box_train,bounding_box_test,query}/*.jpg
# and data/market1501/parsing/<subset>/<stem>.png (values 0..4); see
# docs/p2net.md for where the maps come from.
dataset_type = 'Market1501'
data_root = 'data/market1501/'
parsing_root = 'parsing'
num_parts = 5
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', num_parts=num_parts),
    # the scale is (w, h)
    dict(type='Resize', scale=(128, 384), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackP2NetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', num_parts=num_parts),
    dict(type='Resize', scale=(128, 384), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackP2NetInputs'),
]
# without part maps: the baseline and the latent-only model read none
image_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 384), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackP2NetInputs'),
]
image_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 384), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackP2NetInputs'),
]
train_dataloader = dict(
    batch_size=48,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        mode='train',
        parsing_root=parsing_root,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        mode='test',
        parsing_root=parsing_root,
        pipeline=test_pipeline))
val_evaluator = dict(type='QueryGalleryReIDMetric', feature='pool5')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

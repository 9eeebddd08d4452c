# Toy person re-ID (Market-1501 layout and naming), made by
# `python tools/misc/make_toy_data.py`: 80 train ids, 40 test ids, 6
# cameras, junk (-1) and distractor (0000) gallery images, and a part-parsing
# map per image under parsing/<subset>/ (0 background, 1 head, 2 upper body,
# 3 lower body, 4 shoes). Images are 128x64 (h x w) and stay so: the same
# pipeline as configs/_base_/datasets/market1501.py at a quarter of the
# pixels, read by the same Market1501 dataset class.
dataset_type = 'Market1501'
data_root = '{{ fileDirname }}/../../../data/toy_reid/'
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
    dict(type='Resize', scale=(64, 128), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackP2NetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', num_parts=num_parts),
    dict(type='Resize', scale=(64, 128), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackP2NetInputs'),
]
# without part maps: the baseline and the latent-only model read none
image_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 128), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackP2NetInputs'),
]
image_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 128), keep_ratio=False,
         interpolation='bicubic'),
    dict(type='PackP2NetInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=False,
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
    num_workers=2,
    persistent_workers=False,
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

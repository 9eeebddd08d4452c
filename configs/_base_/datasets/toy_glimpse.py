# Toy glimpse classification (ImageNet layout), made by
# `python tools/misc/make_toy_data.py`: toy_cls's 10 shape classes and
# split sizes (2600 train / 400 val / 2000 test, 64x64), the labelled
# shape always at the centre among distractor shapes of random classes,
# so that the class sits in a few tokens at a fixed place. No crop
# augmentation: it would move the centre (a flip keeps it). The test
# loader reads the 2,000-image test split (toy_cls's reads val).
_base_ = ['./toy_cls.py']
data_root = '{{ fileDirname }}/../../../data/toy_glimpse/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file='meta/test.txt',
                 data_prefix='test'))

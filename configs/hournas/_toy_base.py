# HourNAS on the toy classification set (spec section 7): 64x64 images
# resized to 32x32, the toy arch (3 stages, one vital and one non-vital
# block each, widths about a quarter of EfficientNet-B0's), ReLU. The
# 60 training images of each class (drawn with seed 0) are held out
# for the search and never trained on by the supernets. The supernets
# share weights between the ops of a position (weight_sharing=
# 'entangled'): with separate weights (SPOS, the spec's reading, kept
# for ImageNet) uniform paths do not train in a CPU budget (README).
_base_ = [
    '../_base_/datasets/toy_cls.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.hournas'],
                      allow_failed_imports=False)
input_shape = (1, 3, 32, 32)
# B: 60% of the largest toy subnet (4.75 M MACs at 32x32)
budget = 2_850_000
arch = 'toy'
act_cfg = dict(type='ReLU')
model = dict(
    type='ImageClassifier',
    backbone=dict(type='HourNASSupernet', arch=arch, mode='vital_only',
                  weight_sharing='entangled', act_cfg=act_cfg),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='DropoutLinearClsHead', num_classes=10, in_channels=128,
              dropout_rate=0.0,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
              topk=(1, 5)))
# single-path training leaves the other candidates without gradients
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.7, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=32),
    dict(type='PackInputs'),
]
_train_set = dict(
    type='CustomDataset', data_root='{{ fileDirname }}/../../data/toy_cls/',
    ann_file='meta/train.txt', data_prefix='train',
    metainfo={{ _base_.metainfo }})
# supernets train on the rest (the retrain config puts the whole set back)
train_dataloader = dict(
    dataset=dict(_delete_=True, type='HeldOutSplit', part='train',
                 per_class=60,
                 dataset=dict(_train_set, pipeline=train_pipeline)))
heldout_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=False,
    dataset=dict(type='HeldOutSplit', part='heldout', per_class=60,
                 dataset=dict(_train_set, pipeline=test_pipeline)),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True,
                   weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=1, max_keep_ckpts=1))
randomness = dict(seed=0)

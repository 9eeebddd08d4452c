# HourNAS stage 1 on ImageNet-1k (spec 2.3, table 3): the vital-only
# supernet (non-vital blocks are the identity, position 0 fixed to
# ir_k3_e1), single-path uniform sampling, 5 epochs, SGD nesterov lr 0.2 @
# 512 (8 GPUs x 64), cosine, wd 4e-5, label smoothing 0.1,
# RandomResizedCrop 224 + flip. 10 training images per class are held out
# for the search. The 3 GPU-hour total of the abstract is not a target
# here. Next: hournas_stage1-search_in1k.py.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.hournas'],
                      allow_failed_imports=False)
# B, in MACs at 224 (HourNAS-F-like; 313_000_000 for an E-like net: set
# it in train_cfg.budget of the search stages and in the stage 2
# supernet's HourNASPathSamplerHook)
budget = 383_000_000
input_shape = (1, 3, 224, 224)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='HourNASSupernet', arch='imagenet', mode='vital_only',
                  fixed_choices={0: 'ir_k3_e1'}, act_cfg=dict(type='Swish')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='DropoutLinearClsHead', num_classes=1000,
              in_channels=1280, dropout_rate=0.0,
              loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                        mode='original'),
              topk=(1, 5)))
# single-path training leaves the other candidates without gradients
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)

_train_set = dict(type='ImageNet', data_root='data/imagenet', split='train')
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=8,
    dataset=dict(_delete_=True, type='HeldOutSplit', part='train',
                 per_class=10,
                 dataset=dict(_train_set,
                              pipeline={{ _base_.train_pipeline }})))
heldout_dataloader = dict(
    batch_size=128, num_workers=8, persistent_workers=False,
    dataset=dict(type='HeldOutSplit', part='heldout', per_class=10,
                 dataset=dict(_train_set, pipeline=test_pipeline)),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, nesterov=True,
                   weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
max_epochs = 5
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
custom_hooks = [dict(type='SinglePathSamplerHook', input_shape=input_shape)]
auto_scale_lr = dict(base_batch_size=512)
# a seed makes a search resumable to the same result (the calibration
# batches are drawn again after a restart) and the supernets repeatable
randomness = dict(seed=0)

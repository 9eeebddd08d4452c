# Toy manifold KD, step 1: the teacher, a small hybrid ViT (the ViT
# paper's "hybrid", Sec. 3.1): the stride-16 stages 1-3 of the toy
# ResNet-18 baseline as its patch embedding (4x4 tokens + class token at
# 64x64), then 4 transformer blocks of dim 128, 4 heads (1.25M
# parameters). As in the paper's hybrids, the CNN part starts from a
# trained CNN (configs/baselines/resnet18_toy_cls.py); the encoder is
# trained from scratch. Plain ViTs from scratch stay near chance on this
# toy set within a CPU budget (see projects/manifold_kd/README.md).
#   python tools/train.py configs/baselines/resnet18_toy_cls.py
#   python tools/train.py configs/manifold_kd/toy_vit_teacher.py
_base_ = ['./toy_vit_student.py']
custom_imports = dict(imports=['projects.manifold_kd'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='HybridVisionTransformer',
        cnn=dict(
            type='ResNet',
            depth=18,
            num_stages=3,
            out_indices=(2, ),
            strides=(1, 2, 2),
            dilations=(1, 1, 1),
            stem_channels=32,
            base_channels=32,
            init_cfg=dict(
                type='Pretrained',
                checkpoint='work_dirs/resnet18_toy_cls/epoch_15.pth',
                prefix='backbone.')),
        arch=dict(
            embed_dims=128, num_layers=4, num_heads=4,
            feedforward_channels=256),
        img_size=64,
        patch_size=16,
        drop_path_rate=0.0,
        init_cfg=None),
    head=dict(in_channels=128))
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# transformers on this set learn better at 2e-4 than at 1e-3
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=80),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True)
]
default_hooks = dict(
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))

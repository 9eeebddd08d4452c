# Toy manifold KD, step 1: the teacher. A timm ViT through mmpretrain's
# TimmClassifier (patch 16 on 64x64, dim 96, depth 6, 3 heads) WITHOUT a
# class token (average pooling), like CaiT's self-attention blocks: the
# distiller then drops the student's class token ('auto' token rule).
# Trained once, longer than the student:
#   python tools/train.py configs/manifold_kd/toy_vit_teacher.py \
#       --work-dir work_dirs/toy_vit_teacher
_base_ = ['./toy_vit_student.py']
model = dict(
    _delete_=True,
    type='TimmClassifier',
    model_name='vit_tiny_patch16_224',
    pretrained=False,  # no download: random init, trained here
    num_classes=10,
    img_size=64,
    patch_size=16,
    embed_dim=96,
    depth=6,
    num_heads=3,
    class_token=False,
    global_pool='avg',
    loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    data_preprocessor={{_base_.data_preprocessor}})

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=80),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))

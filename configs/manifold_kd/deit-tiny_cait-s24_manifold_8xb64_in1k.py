# Manifold distillation, ImageNet-1k: DeiT-Tiny student, CaiT-S24 teacher
# (timm `cait_s24_224` through mmpretrain's TimmClassifier, weights from
# the DeiT/CaiT release, frozen, same mixed batch), soft KD (T = 1) + the
# manifold terms on the first and last four blocks of each model. Recipe of
# deit-tiny_8xb64_in1k.py (300 epochs, 8 x 64, AdamW, EMA, Mixup/CutMix).
# Expected top-1: 76.4 (official release; NeurIPS paper 76.5), acceptance
# >= 76.0 at the final epoch (non-EMA). Teacher alone: 83.5.
_base_ = ['./deit-tiny_8xb64_in1k.py']
custom_imports = dict(imports=['projects.manifold_kd'],
                      allow_failed_imports=False)
# the teacher's weights: the CaiT-S24 release ({'model': ...} files load
# as is), loaded by the Runner, never when the config is built
teacher_ckpt = 'checkpoints/cait_s24_224.pth'
model = dict(
    _delete_=True,
    type='ManifoldKDClassifier',
    student={{_base_.model}},
    teacher=dict(
        type='TimmClassifier',
        model_name='cait_s24_224',
        pretrained=False,  # never download: teacher_ckpt is loaded
        num_classes=1000,
        # 'token' (timm's default): 'avg' averages CaiT's patch tokens in
        # timm >= 0.9 and gives a wrong teacher
        global_pool='token',
        data_preprocessor={{_base_.data_preprocessor}}),
    teacher_ckpt=teacher_ckpt,
    # DeiT block i -> CaiT self-attention block j, pre-norm outputs; DeiT's
    # class token is dropped ('auto': 197 vs 196 tokens)
    layer_pairs=[
        ('backbone.layers.0', 'model.blocks.0'),
        ('backbone.layers.1', 'model.blocks.1'),
        ('backbone.layers.2', 'model.blocks.2'),
        ('backbone.layers.3', 'model.blocks.3'),
        ('backbone.layers.8', 'model.blocks.20'),
        ('backbone.layers.9', 'model.blocks.21'),
        ('backbone.layers.10', 'model.blocks.22'),
        ('backbone.layers.11', 'model.blocks.23'),
    ],
    gt_weight=0.0,  # ground-truth CE (official: 1 - distillation-alpha)
    kd_weight=1.0,  # soft logit KD (official: distillation-alpha)
    mf_weight=1.0,  # all manifold terms (official: distillation-beta)
    temperature=1.0,  # T
    w_intra=4.0,  # paper's alpha (cross-patch)
    w_inter=0.1,  # paper's beta (cross-image, per-GPU batch)
    w_rand=0.2,  # paper's gamma (random rows)
    num_rand_rows=192,  # K
)

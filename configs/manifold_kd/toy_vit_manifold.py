# Toy manifold KD: the ViT student of toy_vit_student.py distilled from
# the toy ResNet-18 baseline (configs/baselines/resnet18_toy_cls.py, 68.8%
# top-1; its stride-16 stage is a 4x4 token grid like the student's patch-16
# grid), soft KD + the three manifold terms on 2 layer pairs + CE, same
# schedule and seed as the student alone. A toy ViT teacher does not leave
# chance level within a CPU budget here (see the project README). Train the
# teacher once (or point model.teacher_ckpt at its checkpoint):
#   python tools/train.py configs/baselines/resnet18_toy_cls.py
#   python tools/train.py configs/manifold_kd/toy_vit_manifold.py
# 3-seed results: projects/manifold_kd/README.md.
_base_ = ['./toy_vit_student.py']
custom_imports = dict(imports=['projects.manifold_kd'],
                      allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='ManifoldKDClassifier',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/../baselines/resnet18_toy_cls.py',
    teacher_ckpt='work_dirs/resnet18_toy_cls/epoch_15.pth',
    # student block -> teacher stage block, both 4x4 token grids (the
    # student's class token is dropped: 'auto'); ResNet maps (B, C, H, W)
    # are read as H*W tokens
    layer_pairs=[
        ('backbone.layers.1', 'backbone.layer3.0'),
        ('backbone.layers.3', 'backbone.layer3.1'),
    ],
    gt_weight=1.0,  # ground-truth CE (the released ImageNet recipe: 0)
    kd_weight=1.0,  # soft logit KD
    mf_weight=1.0,  # all manifold terms
    temperature=1.0,  # T
    w_intra=4.0,  # paper's alpha (cross-patch)
    w_inter=0.1,  # paper's beta (cross-image)
    w_rand=0.2,  # paper's gamma (random rows)
    num_rand_rows=192,  # K (of B*N = 32*16 = 512 rows here)
)

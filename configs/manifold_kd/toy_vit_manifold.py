# Toy manifold KD, step 3: the plain ViT student of toy_vit_student.py
# (0.19M parameters) distilled from the small hybrid ViT teacher of
# toy_vit_teacher.py (1.25M; 68% top-1): soft KD + the three manifold
# terms on 2 layer pairs + CE, same schedule and seed as the student
# alone. Train the teacher once (or point model.teacher_ckpt at its
# checkpoint):
#   python tools/train.py configs/baselines/resnet18_toy_cls.py
#   python tools/train.py configs/manifold_kd/toy_vit_teacher.py
#   python tools/train.py configs/manifold_kd/toy_vit_manifold.py
# 3-seed results: projects/manifold_kd/README.md.
_base_ = ['./toy_vit_student.py']
custom_imports = dict(imports=['projects.manifold_kd'],
                      allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='ManifoldKDClassifier',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/toy_vit_teacher.py',
    teacher_ckpt='work_dirs/toy_vit_teacher/epoch_8.pth',
    # student block -> teacher block (pre-norm block outputs), both a
    # class token + 4x4 patch tokens ('auto' keeps both class tokens)
    layer_pairs=[
        ('backbone.layers.1', 'backbone.layers.1'),
        ('backbone.layers.3', 'backbone.layers.3'),
    ],
    gt_weight=1.0,  # ground-truth CE (the released ImageNet recipe: 0)
    kd_weight=1.0,  # soft logit KD
    mf_weight=1.0,  # all manifold terms
    temperature=1.0,  # T
    w_intra=4.0,  # paper's alpha (cross-patch)
    w_inter=0.1,  # paper's beta (cross-image)
    w_rand=0.2,  # paper's gamma (random rows)
    num_rand_rows=192,  # K (of B*N = 32*17 = 544 rows here)
)

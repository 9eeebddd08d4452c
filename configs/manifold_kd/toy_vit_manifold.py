# Toy manifold KD, step 3: the student of toy_vit_student.py distilled from
# the toy_vit_teacher.py checkpoint (soft KD + the three manifold terms on
# 4 layer pairs), same schedule and seed as the student alone. Train the
# teacher first (or point model.teacher_ckpt at its checkpoint):
#   python tools/train.py configs/manifold_kd/toy_vit_teacher.py \
#       --work-dir work_dirs/toy_vit_teacher
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
    teacher_ckpt='work_dirs/toy_vit_teacher/epoch_20.pth',
    # student block -> teacher block (pre-norm block outputs), the first
    # and last blocks of each as in the paper's 0-3 -> 0-3, 8-11 -> 20-23
    layer_pairs=[
        ('backbone.layers.0', 'model.blocks.0'),
        ('backbone.layers.1', 'model.blocks.1'),
        ('backbone.layers.2', 'model.blocks.4'),
        ('backbone.layers.3', 'model.blocks.5'),
    ],
    gt_weight=1.0,  # ground-truth CE (the released ImageNet recipe: 0)
    kd_weight=1.0,  # soft logit KD
    mf_weight=1.0,  # all manifold terms
    temperature=1.0,  # T
    w_intra=4.0,  # paper's alpha (cross-patch)
    w_inter=0.1,  # paper's beta (cross-image)
    w_rand=0.2,  # paper's gamma (random rows)
    num_rand_rows=192,  # K (B*N = 32*16 = 512 rows here)
)

# Toy DeFeat for two-stage detectors: the student of
# toy_faster_rcnn_student.py distilled from the toy_faster_rcnn_teacher.py
# checkpoint with the decoupled neck loss and the decoupled RoI KL on the
# teacher's sampled RoIs (beta 2 / 2, T 1). The neck term follows the
# toy RetinaNet recipe (toy_retinanet_defeat.py): the levels where the toy
# objects are (P2..P4 here), finest_scale 16, weights 0.25 : 1 (1 : 4).
# Train the teacher first (or: python tools/misc/demo.py --detector
# faster_rcnn):
#   python tools/train.py configs/defeat/toy_faster_rcnn_teacher.py
#   python tools/train.py configs/defeat/toy_faster_rcnn_defeat.py
_base_ = ['./toy_faster_rcnn_student.py']
custom_imports = dict(imports=['projects.defeat'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='DeFeatDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/toy_faster_rcnn_teacher.py',
    teacher_ckpt='work_dirs/toy_faster_rcnn_teacher/epoch_12.pth',
    alpha_obj=0.25,
    alpha_bg=1.0,
    neck_levels=[0, 1, 2],
    finest_scale=16,
    roi_kd=True,
    beta_obj=2.0,
    beta_bg=2.0,
    temperature=1.0)

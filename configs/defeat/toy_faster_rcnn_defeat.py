# Toy DeFeat for two-stage detectors: the student of
# toy_faster_rcnn_student.py distilled from the toy_faster_rcnn_teacher.py
# checkpoint with the decoupled neck loss (1 : 4) and the decoupled RoI KL
# on the teacher's sampled RoIs (beta 2 / 2, T 1). Train the teacher first:
#   python tools/train.py configs/defeat/toy_faster_rcnn_teacher.py
#   python tools/train.py configs/defeat/toy_faster_rcnn_defeat.py
_base_ = ['./toy_faster_rcnn_student.py']
custom_imports = dict(imports=['projects.defeat'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='DeFeatDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/toy_faster_rcnn_teacher.py',
    teacher_ckpt='work_dirs/toy_faster_rcnn_teacher/epoch_8.pth',
    alpha_obj=4.0,
    alpha_bg=16.0,
    roi_kd=True,
    beta_obj=2.0,
    beta_bg=2.0,
    temperature=1.0)

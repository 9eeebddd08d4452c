# Toy DeFeat, step 3: the student of toy_retinanet_student.py distilled
# from the toy_retinanet_teacher.py checkpoint with the decoupled neck loss
# (alpha_obj : alpha_bg = 1 : 4), same schedule and seed. Train the teacher
# first (or point model.teacher_ckpt at its checkpoint):
#   python tools/train.py configs/defeat/toy_retinanet_teacher.py
#   python tools/train.py configs/defeat/toy_retinanet_defeat.py
# `make demo` runs all three and prints the table; the 3-seed results are
# in projects/defeat/README.md.
_base_ = ['./toy_retinanet_student.py']
custom_imports = dict(imports=['projects.defeat'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='DeFeatDistiller',
    student={{_base_.model}},
    teacher='{{ fileDirname }}/toy_retinanet_teacher.py',
    teacher_ckpt='work_dirs/toy_retinanet_teacher/epoch_8.pth',
    alpha_obj=4.0,
    alpha_bg=16.0)

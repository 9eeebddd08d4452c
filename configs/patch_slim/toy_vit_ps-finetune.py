# Patch Slimming on toy data, step 3: fine-tune the pruned model of
# toy_vit_ps-search.py (its keep lists come with pruned.pth) with the
# labels and soft KD from the frozen dense model, 0.5 CE + 0.5 KD (T = 1;
# spec 2.6, re-derivation), then validate; tools/test.py as usual.
#   python tools/train.py configs/patch_slim/toy_vit_ps-finetune.py
#   python tools/test.py configs/patch_slim/toy_vit_ps-finetune.py \
#       work_dirs/toy_vit_ps-finetune/epoch_2.pth
_base_ = ['./toy_vit_ps-train.py']
model = dict(
    _delete_=True,
    type='PatchSlimDistillClassifier',
    # the search's model, with the pruned weights and keep lists
    student=dict(
        cfg_path='{{ fileDirname }}/toy_vit_ps-search.py',
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/toy_vit_ps-search/pruned.pth')),
    teacher='{{ fileDirname }}/toy_vit_ps-train.py',
    teacher_ckpt='work_dirs/toy_vit_ps-train/epoch_8.pth',
    gt_weight=0.5,  # CE
    kd_weight=0.5,  # soft KD from the dense model
    temperature=1.0)
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=5e-5))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         eta_min=1e-6, convert_to_iter_based=True)
]
default_hooks = dict(
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))

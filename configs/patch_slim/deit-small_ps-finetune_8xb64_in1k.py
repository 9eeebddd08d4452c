# Patch Slimming's final fine-tune for DeiT-S: the recipe of
# deit-tiny_ps-finetune_8xb64_in1k.py with drop-path 0.1 (spec 2.6).
# Paper target: 79.4 top-1 at 2.6 G MACs (dense 79.8 / 4.6 G).
#   bash tools/dist_train.sh \
#       configs/patch_slim/deit-small_ps-finetune_8xb64_in1k.py 8
_base_ = ['./deit-tiny_ps-finetune_8xb64_in1k.py']
model = dict(
    student=dict(
        cfg_path='{{ fileDirname }}/deit-small_ps-search_in1k.py',
        init_cfg=dict(
            checkpoint='work_dirs/deit-small_ps-search_in1k/pruned.pth'),
        backbone=dict(drop_path_rate=0.1)),
    teacher='{{ fileDirname }}/deit-small_in1k.py',
    teacher_ckpt='checkpoints/deit-small_in1k.pth')

# Patch Slimming's final fine-tune on ImageNet-1k (spec 2.6, a
# re-derivation: the paper's schedule is unknown): the pruned DeiT-Ti of
# deit-tiny_ps-search_in1k.py (its keep lists come with pruned.pth), 30
# epochs on 8 GPUs x 64, AdamW 1e-4 at batch 512 (linear scaling), wd
# 0.05, 1 warmup epoch + cosine, RandAugment m9, Mixup 0.8 / CutMix 1.0,
# random erasing 0.25, repeated augmentation, drop-path 0, loss
# 0.5 CE + 0.5 soft KD (T = 1) from the frozen dense DeiT-Ti.
# Paper target: 72.0 top-1 at 0.7 G MACs (dense 72.2 / 1.3 G).
#   bash tools/dist_train.sh \
#       configs/patch_slim/deit-tiny_ps-finetune_8xb64_in1k.py 8
_base_ = ['./deit-tiny_in1k.py']
model = dict(
    _delete_=True,
    type='PatchSlimDistillClassifier',
    student=dict(
        cfg_path='{{ fileDirname }}/deit-tiny_ps-search_in1k.py',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='work_dirs/deit-tiny_ps-search_in1k/pruned.pth'),
        # one of the two per batch; the teacher sees the same mixed tensor
        train_cfg=dict(augments=[
            dict(type='Mixup', alpha=0.8),
            dict(type='CutMix', alpha=1.0),
        ])),
    teacher='{{ fileDirname }}/deit-tiny_in1k.py',
    teacher_ckpt='checkpoints/deit-tiny_in1k.pth',
    gt_weight=0.5,  # CE
    kd_weight=0.5,  # soft KD from the dense model
    temperature=1.0)
train_dataloader = dict(
    batch_size=64,
    sampler=dict(_delete_=True, type='RepeatAugSampler', shuffle=True))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, eps=1e-8,
                   betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
max_epochs = 30
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1,
         end=max_epochs)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
randomness = dict(seed=0, diff_rank_seed=True)

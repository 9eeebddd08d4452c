# Patch Slimming search on ImageNet-1k (spec 2.4, 2.5): DeiT-Ti (72.2,
# 1.254 G MACs) pruned top-down to a 0.70 G MACs budget; epsilon is
# bisected on a log scale without inner fine-tuning, then the search runs
# once more at that epsilon with it (200 iterations at batch 128 per
# trial, AdamW 1e-5, feature MSE + 0.5 soft KD). 4,096 calibration and
# 2,048 error images are drawn from the training split (never val).
# Paper: DeiT-Ti 72.2 / 1.3 G -> 72.0 / 0.7 G after the fine-tune
# (deit-tiny_ps-finetune_8xb64_in1k.py). Writes keep_indices.json and
# pruned.pth to the work dir.
#   python tools/train.py configs/patch_slim/deit-tiny_ps-search_in1k.py
_base_ = ['./deit-tiny_in1k.py']
# the training split, with the test pipeline (no augmentation)
train_dataloader = dict(
    batch_size=128,
    dataset=dict(pipeline={{_base_.test_pipeline}}),
    sampler=dict(type='DefaultSampler', shuffle=False))
train_cfg = dict(
    type='PatchSlimSearchLoop',
    dense_checkpoint='checkpoints/deit-tiny_in1k.pth',
    budget=700_000_000,
    r0=8,  # tokens added per trial [re-derivation]
    num_calib=4096,
    num_error=2048,
    score_mode='mean_head',
    finetune_steps=200,
    finetune_scope='above',
    finetune_lr=1e-5,
    finetune_batch_size=128,
    kd_weight=0.5)
# unused by the search (its inner fine-tuning has its own AdamW); mmengine
# needs one with a train_cfg
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-5))

# Patch Slimming on toy data, step 2: the top-down search of the tokens
# each block keeps (spec 2.4), in budget mode (2.5): the smallest
# tolerance whose keep lists cost at most `budget` MACs. The budget is the
# conv stem embedding (11.37 M MACs, not pruned) plus 55% of the dense
# blocks' 57.61 M: 45% fewer MACs in the transformer, 37.6% fewer in all
# (dense 68.98 M). Calibration and error images are disjoint draws from the
# training split. Writes keep_indices.json and pruned.pth.
#   python tools/train.py configs/patch_slim/toy_vit_ps-search.py
# Next: toy_vit_ps-finetune.py.
_base_ = ['./toy_vit_ps-train.py']
# the weights come from the dense model, not from the stem's run
model = dict(backbone=dict(cnn=dict(init_cfg=None)))
# the training split with the test pipeline (no augmentation)
train_dataloader = dict(
    batch_size=64,
    dataset=dict(pipeline={{_base_.test_pipeline}}),
    sampler=dict(type='DefaultSampler', shuffle=False))
train_cfg = dict(
    _delete_=True,
    type='PatchSlimSearchLoop',
    dense_checkpoint='work_dirs/toy_vit_ps-train',
    budget=43_060_000,
    r0=4,  # tokens added per trial (spec toy: 2; 4 halves the trials)
    num_calib=1024,
    num_error=512,
    score_mode='mean_head',
    finetune_steps=10,
    finetune_scope='above',
    finetune_lr=1e-4,
    finetune_batch_size=64,
    kd_weight=0.5)
param_scheduler = None  # nothing trains but the inner fine-tuning
val_cfg = None
val_dataloader = None
val_evaluator = None

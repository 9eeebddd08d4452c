# The retrain recipe of the toy search evidence: toy_hitdet.py with 32
# sampled RoIs per image and 100 training proposals (its 512 RoIs per batch
# cost 4.0 s an iteration on 2 threads, this 0.83 s), 6 epochs, validated
# and checkpointed at the end. The searched genotypes and the random
# baselines of projects/hit_detector/README.md ("Toy data") all retrain
# with it (their configs inherit it):
#   python tools/train.py configs/hit_detector/toy_hitdet_6e.py
_base_ = ['./toy_hitdet.py']
model = dict(
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=100),
        rcnn=dict(sampler=dict(num=32))))
# 1 thread per run when two run side by side: no loader processes
train_dataloader = dict(num_workers=0)
val_dataloader = dict(num_workers=0)
test_dataloader = val_dataloader
max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, T_max=max_epochs,
         convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))

# Toy Hit-Detector screening (stage A) as the toy evidence runs it: the
# pipeline check toy_hitdet_screen.py on the whole toy training split
# (weights on its even half, gates on its odd half, batch 8: 50 iterations
# an epoch), the retrain's RoI sampling (toy_hitdet_6e.py), 4 epochs of
# which the first trains the weights only. About 9 min on 2 threads.
#   python tools/train.py configs/hit_detector/toy_hitdet_screen-4e.py
# Next: toy_hitdet_search-4e.py.
_base_ = ['./toy_hitdet_screen.py']
model = dict(
    detector=dict(
        train_cfg=dict(
            rpn_proposal=dict(max_per_img=100),
            rcnn=dict(sampler=dict(num=32)))),
    # the RoI blocks run on the 300 test proposals of toy_hitdet.py
    head_cost_rois=300)
train_dataloader = dict(batch_size=8, dataset=dict(indices=None))
val_dataloader = dict(batch_size=8, dataset=dict(indices=None))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=4, arch_warmup_epochs=1, val_interval=4)
default_hooks = dict(logger=dict(interval=10))

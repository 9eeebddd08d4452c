# RetinaNet with a GhostNet 1.0x backbone (from scratch) on the toy
# detection set, next to configs/baselines/retinanet_r18_toy_det.py.
# Results: projects/ghostnet/README.md.
_base_ = ['../baselines/retinanet_r18_toy_det.py']
custom_imports = dict(imports=['projects.ghostnet'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.GhostNet',
        widen_factor=1.0,
        out_indices=(2, 4, 6, 9)),
    neck=dict(in_channels=[24, 40, 112, 960]))

# TNT-Ti (official structure; c = 12 / 2 heads, d = 192 / 3 heads),
# ImageNet-1k from scratch, 224x224: the TNT-S recipe
# (tnt-s-p16_8xb128_in1k.py). No official weights exist for Ti.
# Expected top-1: 73.9 (paper table; not verified against a release);
# 6.1M params, 1.4G MACs.
_base_ = ['./tnt-s-p16_8xb128_in1k.py']
custom_imports = dict(imports=['projects.tnt'], allow_failed_imports=False)
model = dict(backbone=dict(arch='ti'), head=dict(in_channels=192))

# TNT-B (official structure), ImageNet-1k from scratch, 224x224: the TNT-S
# recipe (tnt-s-p16_8xb128_in1k.py); drop path 0.1 (not stated for B in the
# official release; the DeiT-B value).
# Expected top-1: 82.9 / 96.3 (paper and official weights tnt_b_82.9);
# 65.6M params, 14.1G MACs.
_base_ = ['./tnt-s-p16_8xb128_in1k.py']
custom_imports = dict(imports=['projects.tnt'], allow_failed_imports=False)
model = dict(
    backbone=dict(arch='b', drop_path_rate=0.1),
    head=dict(in_channels=640))

# TNT-S in the legacy structure (timm < 1.0.16 / tnt_s_legacy_patch16_224,
# mmpretrain TNT weights), inference only: convert the weights with
# tools/model_converters/tnt_to_evlab.py --source timm | mmpretrain.
# Expected top-1: 81.52 / 95.73 (mmpretrain), 81.51 / 95.74 (timm).
_base_ = ['./tnt-s-p16_8xb128_in1k.py']
custom_imports = dict(imports=['projects.tnt'], allow_failed_imports=False)
model = dict(backbone=dict(structure='legacy', drop_path_rate=0.))

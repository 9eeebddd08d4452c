# Patch Slimming, the starting point: dense DeiT-Tiny (every block keeps
# all 197 tokens) as PatchSlimViT, with the DeiT release's weights
# converted from timm (deit_tiny_patch16_224.fb_in1k):
#   python tools/model_converters/timm_vit_to_mmpretrain.py \
#       deit_tiny_patch16_224.pth checkpoints/deit-tiny_in1k.pth
#   python tools/test.py configs/patch_slim/deit-tiny_in1k.py \
#       checkpoints/deit-tiny_in1k.pth
# Expected top-1: 72.2 (timm model zoo 72.19; 1.254 G MACs, 5.72 M params).
# Paper targets after pruning (CVPR 2022): DeiT-Ti 72.2 / 1.3 G ->
# 72.0 / 0.7 G; DeiT-S 79.8 / 4.6 G -> 79.4 / 2.6 G. A pruned model is
# this config with model.backbone.keep_indices=<keep_indices.json> (or a
# pruned checkpoint, which carries its keep lists).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['projects.patch_slim'],
                      allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PatchSlimViT',
        arch='deit-tiny',
        img_size=224,
        patch_size=16,
        keep_indices=None),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=192,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
    data_preprocessor={{_base_.data_preprocessor}})
# for tools/test.py; the search and the fine-tune configs build on it

# Patch Slimming, the starting point for DeiT-S: dense DeiT-Small (every
# block keeps all 197 tokens), the DeiT release converted from timm
# (deit_small_patch16_224.fb_in1k) with
# tools/model_converters/timm_vit_to_mmpretrain.py.
# Expected top-1: 79.9 (timm model zoo 79.86; 4.60 G MACs, 22.1 M params).
# Paper target after pruning: 79.4 at 2.6 G MACs.
_base_ = ['./deit-tiny_in1k.py']
model = dict(
    backbone=dict(arch='deit-small'),
    head=dict(in_channels=384))

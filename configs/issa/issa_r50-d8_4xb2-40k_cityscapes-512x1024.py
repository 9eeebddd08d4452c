# ISANet R50-D8 with our ISSAHead, Cityscapes 512x1024 crops, 40k iterations,
# 4 GPUs x 2, SGD lr 0.01 poly 0.9, aux FCN head (0.4). Expected mIoU 78.49
# (79.44 ms+flip), the mmseg model zoo's ISAHead figure: the same model.
_base_ = 'mmseg::isanet/isanet_r50-d8_4xb2-40k_cityscapes-512x1024.py'
custom_imports = dict(imports=['projects.issa'], allow_failed_imports=False)
model = dict(decode_head=dict(type='ISSAHead'))

# ISANet R50-D8 with our ISSAHead, Cityscapes 769x769 crops (97x97 D8 maps,
# padded to 104x104), align_corners, slide test 769/513, 40k iterations,
# 4 GPUs x 2. Expected mIoU 78.70 (80.28 ms+flip), mmseg model zoo.
_base_ = 'mmseg::isanet/isanet_r50-d8_4xb2-40k_cityscapes-769x769.py'
custom_imports = dict(imports=['projects.issa'], allow_failed_imports=False)
model = dict(decode_head=dict(type='ISSAHead'))

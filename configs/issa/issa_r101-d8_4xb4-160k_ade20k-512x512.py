# ISANet R101-D8 with our ISSAHead, ADE20K 512x512 crops, 150 classes, 160k
# iterations, 4 GPUs x 4, SGD lr 0.01 poly 0.9. Expected mIoU 43.80
# (45.40 ms+flip), mmseg model zoo.
_base_ = 'mmseg::isanet/isanet_r101-d8_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['projects.issa'], allow_failed_imports=False)
model = dict(decode_head=dict(type='ISSAHead'))

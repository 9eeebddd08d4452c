# Ablation of faster_rcnn_r50.py: the decoupled neck loss alone, no RoI KL
# (the author reported +0.1-0.2 mAP from the RoI term, official issue #13).
_base_ = './faster_rcnn_r50.py'
model = dict(roi_kd=False)

# Toy ablation: toy_vit_manifold.py without the manifold terms (soft
# logit KD + CE only), to separate the manifold terms' share of the gain.
#   python tools/train.py configs/manifold_kd/toy_vit_softkd.py
_base_ = ['./toy_vit_manifold.py']
model = dict(mf_weight=0.0)

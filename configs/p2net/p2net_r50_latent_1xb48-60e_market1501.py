# P2Net "1 x Latent" on Market-1501: the baseline plus one Dual Part-aligned
# Block after layer3 with the latent-part (self-attention) branch only, no
# part maps. Recipe: as p2net_r50_baseline_1xb48-60e_market1501.py.
# Target: the official README's Duke row is 82.92 Rank-1 / 67.09 mAP; no
# Market figure is published for this ablation.
_base_ = ['./p2net_r50_baseline_1xb48-60e_market1501.py']
model = dict(
    dpb_stages=(2, ),
    use_latent=True,
    use_human=False,
    dpb_cfg=dict(num_parts=5, bg_mode='own'))

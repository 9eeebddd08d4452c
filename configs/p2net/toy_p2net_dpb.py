# P2Net "1 x DPB" (the released model) on the toy re-ID set:
# toy_p2net_baseline.py plus one Dual Part-aligned Block after layer3 (64
# channels, c1 = c2 = 32, K = 5 parts), latent and human branches, the toy
# part maps read with the images and flipped with them.
# Results: projects/p2net/README.md.
_base_ = ['./toy_p2net_baseline.py']
model = dict(
    dpb_stages=(2, ),
    use_latent=True,
    use_human=True,
    dpb_cfg=dict(num_parts=5, bg_mode='own'))
train_dataloader = dict(
    dataset=dict(parsing_root='parsing', pipeline=_base_.train_pipeline))
val_dataloader = dict(
    dataset=dict(parsing_root='parsing', pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

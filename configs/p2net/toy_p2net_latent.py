# P2Net "1 x Latent" on the toy re-ID set: toy_p2net_baseline.py plus one
# Dual Part-aligned Block after layer3 (64 channels, c1 = c2 = 32), latent
# branch only (no part maps read). Results: projects/p2net/README.md.
_base_ = ['./toy_p2net_baseline.py']
model = dict(dpb_stages=(2, ), use_latent=True, use_human=False)

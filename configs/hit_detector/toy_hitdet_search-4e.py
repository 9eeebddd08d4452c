# Toy Hit-Detector joint search (stage B) as the toy evidence runs it: the
# sub-spaces toy_hitdet_screen-4e.py wrote, softmax architecture weights,
# 4 epochs (1 warm-up) on the whole toy training split, and the spec's
# expected-cost penalty gamma C(alpha) / C_ref (gamma 0.02) over the
# analytic MACs of the searched positions (128x128, RoI blocks x 300); the
# random baselines are drawn at the searched genotype's cost. Adam at
# 3e-3 on the architecture, where the pipeline check (and DARTS, over ~20k
# steps) uses 3e-4: this search takes 150 architecture steps. Writes
# genotype.json and retrain_config.py (toy_hitdet_6e.py with the genotype).
#   python tools/train.py configs/hit_detector/toy_hitdet_search-4e.py
#   python tools/train.py work_dirs/toy_hitdet_search-4e/retrain_config.py
_base_ = ['./toy_hitdet_screen-4e.py']
model = dict(
    mode='softmax',
    sub_spaces='work_dirs/toy_hitdet_screen-4e/sub_spaces.json',
    gamma=0.02)
optim_wrapper = dict(
    arch=dict(
        _delete_=True,
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=3e-3, betas=(0.5, 0.999),
                       weight_decay=1e-3)))
custom_hooks = [
    dict(type='HitSearchExportHook',
         template='{{ fileDirname }}/toy_hitdet_6e.py')
]

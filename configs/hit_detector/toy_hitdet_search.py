# Toy Hit-Detector search, stage B (the trinity search, spec 2.3): the toy
# supernet over the sub-spaces the screening wrote (K = 2 per component),
# softmax architecture weights, L_det + gamma C(alpha) / C_ref with the
# analytic MACs at 128x128 (RoI blocks x 1000 RoIs), Adam on the
# architecture from epoch 2 (1 warm-up epoch). Writes genotype.json and
# retrain_config.py (toy_hitdet.py with the genotype) to
# work_dirs/toy_hitdet_search/. A pipeline check, not a search that finds
# anything (2 epochs x 4 iterations).
#   python tools/train.py configs/hit_detector/toy_hitdet_screen.py
#   python tools/train.py configs/hit_detector/toy_hitdet_search.py
#   python tools/train.py work_dirs/toy_hitdet_search/retrain_config.py
_base_ = ['./toy_hitdet_screen.py']
model = dict(
    mode='softmax',
    sub_spaces='work_dirs/toy_hitdet_screen/sub_spaces.json',
    gamma=0.02)
optim_wrapper = dict(
    arch=dict(
        _delete_=True,
        type='OptimWrapper',
        optimizer=dict(type='Adam', lr=3e-4, betas=(0.5, 0.999),
                       weight_decay=1e-3)))
custom_hooks = [
    dict(type='HitSearchExportHook',
         template='{{ fileDirname }}/toy_hitdet.py')
]

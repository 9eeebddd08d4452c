# HourNAS stage 1 search on toy data (spec 2.3 step 3): evolution over the
# vital blocks of the trained vital-only supernet, scored on the held-out
# split after BN recalibration; feasible when the cheapest non-vital
# completion fits the budget. Writes best_genotype.json (the vital ops).
_base_ = ['./toy_hournas_stage1-supernet.py']
custom_hooks = []
param_scheduler = None  # nothing trains
train_cfg = dict(
    _delete_=True,
    type='HourNASEvolutionLoop',
    stage=1,
    budget={{ _base_.budget }},
    supernet_checkpoint='work_dirs/toy_hournas_stage1-supernet',
    eval_dataloader={{ _base_.heldout_dataloader }},
    evaluator=dict(type='Accuracy', topk=(1, )),
    input_shape={{ _base_.input_shape }},
    calib_batches=10,
    searcher=dict(population_size=16, num_generations=5, top_k=8,
                  num_mutations=8, num_crossovers=8, seed=0))

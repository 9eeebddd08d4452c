# HourNAS stage 1 search on ImageNet-1k (spec 2.3 step 3, 2.5): evolution
# (population 50, 20 generations, top 10 parents, 25 mutations + 25
# crossovers) over the vital blocks of the trained vital-only supernet,
# scored by held-out top-1 after BN recalibration on 20 batches of 64;
# feasible when the cheapest non-vital completion fits B.
_base_ = ['./hournas_stage1-supernet_in1k.py']
custom_hooks = []
param_scheduler = None  # nothing trains
train_dataloader = dict(batch_size=64)
train_cfg = dict(
    _delete_=True,
    type='HourNASEvolutionLoop',
    stage=1,
    budget={{ _base_.budget }},
    supernet_checkpoint='work_dirs/hournas_stage1-supernet_in1k',
    eval_dataloader={{ _base_.heldout_dataloader }},
    evaluator=dict(type='Accuracy', topk=(1, )),
    input_shape={{ _base_.input_shape }},
    calib_batches=20,
    searcher=dict(population_size=50, num_generations=20, top_k=10,
                  num_mutations=25, num_crossovers=25, mutation_prob=0.1,
                  seed=0))

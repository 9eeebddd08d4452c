# HourNAS stage 2 search on ImageNet-1k (spec 2.4 step 3): evolution over
# the shrunk non-vital space with 0.9 B <= MACs <= B, mutations drawn from
# the shrunk distribution. Writes best_genotype.json and retrain_config.py
# (hournas-f_8xb96_in1k.py with the searched genotype). Target (spec 4b):
# a genotype in [345, 383] M MACs that retrains to >= 76.0 top-1.
_base_ = ['./hournas_stage2-supernet_in1k.py']
custom_hooks = []
param_scheduler = None  # nothing trains
load_from = None
train_cfg = dict(
    _delete_=True,
    type='HourNASEvolutionLoop',
    stage=2,
    budget={{ _base_.budget }},
    space_file='work_dirs/hournas_stage2-supernet_in1k/space.json',
    supernet_checkpoint='work_dirs/hournas_stage2-supernet_in1k',
    eval_dataloader={{ _base_.heldout_dataloader }},
    evaluator=dict(type='Accuracy', topk=(1, )),
    input_shape={{ _base_.input_shape }},
    calib_batches=20,
    searcher=dict(population_size=50, num_generations=20, top_k=10,
                  num_mutations=25, num_crossovers=25, mutation_prob=0.1,
                  seed=0),
    export=dict(template='configs/hournas/hournas-f_8xb96_in1k.py',
                key='model.backbone.genotype'))

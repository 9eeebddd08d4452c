# HourNAS stage 2 search on toy data (spec 2.4 step 3): evolution over the
# shrunk non-vital space with 0.9 B <= MACs <= B; writes
# best_genotype.json and retrain_config.py (toy_hournas_retrain.py with
# the genotype written in).
_base_ = ['./toy_hournas_stage2-supernet.py']
custom_hooks = []
param_scheduler = None  # nothing trains
load_from = None
train_cfg = dict(
    _delete_=True,
    type='HourNASEvolutionLoop',
    stage=2,
    budget={{ _base_.budget }},
    space_file='work_dirs/toy_hournas_stage2-supernet/space.json',
    supernet_checkpoint='work_dirs/toy_hournas_stage2-supernet',
    eval_dataloader={{ _base_.heldout_dataloader }},
    evaluator=dict(type='Accuracy', topk=(1, )),
    input_shape={{ _base_.input_shape }},
    calib_batches=10,
    searcher=dict(population_size=16, num_generations=5, top_k=8,
                  num_mutations=8, num_crossovers=8, seed=0),
    export=dict(template='configs/hournas/toy_hournas_retrain.py',
                key='model.backbone.genotype'))

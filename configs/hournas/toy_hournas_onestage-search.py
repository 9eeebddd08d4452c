# The one-stage baseline's search: evolution over all six positions at
# once with 0.9 B <= MACs <= B, as many candidates as HourNAS's two
# searches together (8 + 5 x 8). Writes best_genotype.json and
# retrain_config.py.
_base_ = ['./toy_hournas_onestage-supernet.py']
custom_hooks = []
param_scheduler = None  # nothing trains
train_cfg = dict(
    _delete_=True,
    type='HourNASEvolutionLoop',
    stage=2,
    budget={{ _base_.budget }},
    supernet_checkpoint='work_dirs/toy_hournas_onestage-supernet',
    eval_dataloader={{ _base_.heldout_dataloader }},
    evaluator=dict(type='Accuracy', topk=(1, )),
    input_shape={{ _base_.input_shape }},
    calib_batches=10,
    searcher=dict(population_size=16, num_generations=10, top_k=8,
                  num_mutations=8, num_crossovers=8, seed=0),
    export=dict(template='configs/hournas/toy_hournas_retrain.py',
                key='model.backbone.genotype'))

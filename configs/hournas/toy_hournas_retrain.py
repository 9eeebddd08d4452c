# Retrain a toy HourNAS network from scratch on the whole toy training
# set and validate on the toy test split (2,000 images: 400 val images
# measure top-1 to +-2 points, as much as architectures differ). This is
# the template of the search's export: stage 2 writes
# work_dirs/toy_hournas_stage2-search/retrain_config.py, this file with
# the searched genotype. The genotype below is only a
# placeholder that fits the budget (2.25 M MACs: the largest expansion on
# the vital blocks, the smallest on the others); any other with
# --cfg-options model.backbone.genotype=<json file or list>. Results:
# projects/hournas/README.md.
_base_ = ['./_toy_base.py']
model = dict(backbone=dict(
    _delete_=True, type='HourNASNet', arch={{ _base_.arch }},
    act_cfg={{ _base_.act_cfg }},
    genotype=['ir_k3_e6', 'ir_k3_e1', 'ir_k3_e6', 'ir_k3_e1', 'ir_k3_e6',
              'ir_k3_e1']))
model_wrapper_cfg = None
max_epochs = 20
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=50),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
         T_max=max_epochs, convert_to_iter_based=True)
]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CustomDataset',
    data_root='{{ fileDirname }}/../../data/toy_cls/',
    ann_file='meta/train.txt', data_prefix='train',
    metainfo={{ _base_.metainfo }}, pipeline={{ _base_.train_pipeline }}))
# the test split of toy_cls (tools/misc/make_toy_data.py, version 3)
val_dataloader = dict(dataset=dict(ann_file='meta/test.txt',
                                   data_prefix='test'))
test_dataloader = val_dataloader

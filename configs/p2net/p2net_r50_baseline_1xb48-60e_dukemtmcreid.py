# The model and recipe of p2net_r50_baseline_1xb48-60e_market1501.py
# on DukeMTMC-reID (702 training ids, 8 cameras, no junk or distractor
# ids).
# Target (the official README, trained on Duke): 81.10 Rank-1 / 64.87 mAP.
# DukeMTMC-reID was withdrawn by its creators; Market-1501 is the primary
# benchmark.
_base_ = ['./p2net_r50_baseline_1xb48-60e_market1501.py']
dataset_type = 'DukeMTMCReID'
data_root = 'data/dukemtmc-reid/'
model = dict(head=dict(num_classes=702))
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader

# Copyright (c) EVLab contributors.
"""Market-1501 / DukeMTMC-reID loading: file-name parsing, relabelling,
junk and distractor rules, the P x K sampler, and bad input."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from projects.common.errors import EVLabError
from projects.p2net import DukeMTMCReID, Market1501, PKSampler


def make_tree(root, names):
    """Tiny images (and part maps) under ``root/<subset>/<name>``."""
    for sub, files in names.items():
        os.makedirs(osp.join(root, sub), exist_ok=True)
        os.makedirs(osp.join(root, 'parsing', sub), exist_ok=True)
        for name in files:
            Image.new('RGB', (4, 8)).save(osp.join(root, sub, name))
            Image.new('L', (4, 8)).save(
                osp.join(root, 'parsing', sub, name[:-4] + '.png'))
    return str(root)


TREE = {
    'bounding_box_train': ['0007_c1s1_000100_01.jpg',
                           '0002_c2s1_000200_01.jpg',
                           '0002_c3s2_000300_02.jpg',
                           '1500_c6s1_000400_01.jpg'],
    'query': ['0003_c1s1_000500_00.jpg', '0004_c2s1_000600_00.jpg'],
    'bounding_box_test': ['0003_c2s1_000700_01.jpg',
                          '0004_c2s1_000800_01.jpg',
                          '0000_c1s1_000900_01.jpg',
                          '-1_c3s1_001000_01.jpg'],
}


def test_train_relabels_sorted_ids_and_parses_cameras(tmp_path):
    ds = Market1501(make_tree(tmp_path, TREE), mode='train',
                    parsing_root='parsing')
    items = [ds.get_data_info(i) for i in range(len(ds))]
    got = sorted((it['pid'], it['camid'], it['gt_label']) for it in items)
    assert got == [(2, 1, 0), (2, 2, 0), (7, 0, 1), (1500, 5, 2)]
    assert ds.metainfo['num_ids'] == 3
    assert all(it['seg_map_path'].endswith('.png') and
               osp.isfile(it['seg_map_path']) for it in items)
    assert not any(it['is_query'] for it in items)


def test_test_mode_queries_then_gallery_junk_dropped_distractors_kept(
        tmp_path):
    root = make_tree(tmp_path, TREE)
    ds = Market1501(root, mode='test')
    items = [ds.get_data_info(i) for i in range(len(ds))]
    assert [it['is_query'] for it in items] == [True] * 2 + [False] * 3
    assert [it['pid'] for it in items[2:]] == [0, 3, 4]  # sorted names
    assert ds.dropped == {'gallery:-1': 1}
    assert ds.metainfo['num_query'] == 2
    assert 'seg_map_path' not in items[0]  # no parsing_root
    keep = Market1501(root, mode='test', drop_junk=False)
    assert -1 in [keep.get_data_info(i)['pid'] for i in range(len(keep))]


def test_junk_and_distractors_in_train_are_dropped_and_logged(tmp_path):
    tree = dict(TREE, bounding_box_train=TREE['bounding_box_train'] + [
        '0000_c1s1_000001_01.jpg', '-1_c1s1_000002_01.jpg'])
    ds = Market1501(make_tree(tmp_path, tree), mode='train')
    assert len(ds) == 4
    assert ds.dropped == {'train:-1/0': 2}


def test_toy_tree(toy_data):
    root = osp.join(toy_data, 'toy_reid')
    train = Market1501(root, mode='train', parsing_root='parsing')
    labels = sorted({train.get_data_info(i)['gt_label']
                     for i in range(len(train))})
    assert labels == list(range(train.metainfo['num_ids']))
    test = Market1501(root, mode='test', parsing_root='parsing')
    items = [test.get_data_info(i) for i in range(len(test))]
    query = [it for it in items if it['is_query']]
    gallery = [it for it in items if not it['is_query']]
    assert len(query) == len(os.listdir(osp.join(root, 'query')))
    assert test.dropped['gallery:-1'] > 0
    assert any(it['pid'] == 0 for it in gallery)  # distractors stay
    assert all(it['pid'] != -1 for it in gallery)
    # every query id has a gallery image on another camera
    for q in query:
        assert any(g['pid'] == q['pid'] and g['camid'] != q['camid']
                   for g in gallery)


def test_duke_names():
    ds = DukeMTMCReID.__new__(DukeMTMCReID)
    assert ds.parse_name('0001_c2_f0046182.jpg', 'x') == (1, 1)
    assert ds.parse_name('5388_c8_f0172457.jpg', 'x') == (5388, 7)
    with pytest.raises(EVLabError, match='DukeMTMC-reID file name'):
        ds.parse_name('0002_c1s1_000451_03.jpg', 'x')


@pytest.mark.parametrize('name,match', [
    ('0002_c1s1_00045_03.jpg', 'file name pattern'),
    ('abc.jpg', 'file name pattern'),
    ('0002_c7s1_000451_03.jpg', 'camera 7'),
])
def test_bad_file_names_are_named(tmp_path, name, match):
    tree = dict(TREE, query=TREE['query'] + [name])
    with pytest.raises(EVLabError, match=match) as err:
        Market1501(make_tree(tmp_path, tree), mode='test')
    assert name in str(err.value)


def test_missing_subset_is_named(tmp_path):
    tree = {k: v for k, v in TREE.items() if k != 'query'}
    with pytest.raises(EVLabError, match=r'query.*does not exist'):
        Market1501(make_tree(tmp_path, tree), mode='test')
    with pytest.raises(EVLabError, match='mode'):
        Market1501(make_tree(tmp_path, TREE), mode='val')


def test_non_jpg_files_are_ignored(tmp_path):
    root = make_tree(tmp_path, TREE)
    open(osp.join(root, 'query', 'Thumbs.db'), 'w').close()
    assert len(Market1501(root, mode='test')) == 5


class _Labels:
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def get_data_info(self, i):
        return dict(gt_label=self.labels[i])


def test_pk_sampler_batches_hold_k_images_of_p_ids():
    labels = np.repeat(np.arange(6), [5, 2, 4, 8, 1, 4]).tolist()
    sampler = PKSampler(_Labels(labels), num_instances=4, seed=3)
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % 4 == 0
    groups = [order[i:i + 4] for i in range(0, len(order), 4)]
    for g in groups:  # each group: 4 images of one id
        assert len({labels[i] for i in g}) == 1
    seen = {labels[g[0]] for g in groups}
    assert seen == set(range(6))
    # every image of an id with >= K images appears
    assert {i for i, lab in enumerate(labels) if lab == 3} <= set(order)
    assert list(PKSampler(_Labels(labels), 4, seed=3)) == order
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_pk_sampler_deals_whole_groups_to_ranks(monkeypatch):
    import projects.p2net.sampler as mod
    labels = np.repeat(np.arange(5), 4).tolist()
    orders = []
    for rank in (0, 1):
        monkeypatch.setattr(mod, 'get_dist_info', lambda r=rank: (r, 2))
        orders.append(list(PKSampler(_Labels(labels), 4, seed=0)))
    assert len(orders[0]) == len(orders[1]) == 12  # 5 groups padded to 6
    for order in orders:
        for i in range(0, 12, 4):
            assert len({labels[j] for j in order[i:i + 4]}) == 1

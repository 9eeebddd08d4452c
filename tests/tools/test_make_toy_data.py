# Copyright (c) EVLab contributors.
"""The toy datasets: deterministic, in the real formats, read by the real
dataset classes."""
import glob
import hashlib
import json
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
import make_toy_data  # noqa: E402

sys.path.pop(0)


def _digest(folder: str) -> str:
    h = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(folder, '**', '*'),
                                 recursive=True)):
        if osp.isfile(path):
            h.update(osp.relpath(path, folder).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_toy_data.make('seg', str(tmp_path / 'a'), seed=3)
    b = make_toy_data.make('seg', str(tmp_path / 'b'), seed=3)
    c = make_toy_data.make('seg', str(tmp_path / 'c'), seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_existing_complete_dataset_is_kept(tmp_path):
    dst = make_toy_data.make('seg', str(tmp_path), seed=0)
    marker = osp.join(dst, 'user_file.txt')
    open(marker, 'w').close()
    make_toy_data.make('seg', str(tmp_path), seed=0)
    assert osp.exists(marker)  # not regenerated
    make_toy_data.make('seg', str(tmp_path), seed=0, force=True)
    assert not osp.exists(marker)
    assert not osp.exists(dst + '.partial')


def test_detection_coco_covers_three_fpn_levels(toy_data):
    spec = make_toy_data.DetSpec()
    for split, num in (('train', spec.num_train), ('val', spec.num_val)):
        with open(osp.join(toy_data, 'toy_det', 'annotations',
                           f'instances_{split}.json')) as f:
            coco = json.load(f)
        assert len(coco['images']) == num
        assert {c['name'] for c in coco['categories']} == set(
            make_toy_data.DET_CLASSES)
        for im in coco['images']:
            with Image.open(osp.join(toy_data, 'toy_det', split,
                                     im['file_name'])) as img:
                assert img.size == (im['width'], im['height'])
        sizes = np.array([np.sqrt(a['bbox'][2] * a['bbox'][3])
                          for a in coco['annotations']])
        # RetinaNet P3, P4, P5 with the toy anchors (16, 32, 64 px and
        # x1.26, x1.59 octaves): objects in each of their octaves
        counts, _ = np.histogram(sizes, bins=[16, 32, 64, 96])
        assert (counts >= 0.1 * len(sizes)).all(), counts
        assert sizes.min() >= 16 * 0.8 and sizes.max() <= 96 * 1.25
        labels = {a['category_id'] for a in coco['annotations']}
        assert labels == {1, 2, 3, 4, 5}
        per_image = np.bincount([a['image_id'] for a in coco['annotations']],
                                minlength=num + 1)[1:]
        assert per_image.min() >= 1 and per_image.mean() >= 2


def test_detection_clutter_is_drawn_but_not_labelled(tmp_path):
    """Images without objects: the distractor shapes change the pixels of
    the same background (the first image; later ones draw from a
    generator that the clutter advanced) and add no annotation."""
    base = dict(num_train=4, num_val=1, num_objects=(0, 0))
    make_toy_data.make_det(str(tmp_path / 'a'), 0, make_toy_data.DetSpec(
        num_distractors=(0, 0), **base))
    make_toy_data.make_det(str(tmp_path / 'b'), 0, make_toy_data.DetSpec(
        num_distractors=(3, 3), **base))
    for x in 'ab':
        coco = json.load(open(tmp_path / x / 'annotations' /
                              'instances_train.json'))
        assert len(coco['images']) == 4 and coco['annotations'] == []
    name = f'{1:012d}.jpg'
    a = np.asarray(Image.open(tmp_path / 'a' / 'train' / name), float)
    b = np.asarray(Image.open(tmp_path / 'b' / 'train' / name), float)
    changed = (np.abs(a - b).sum(-1) > 60).mean()
    assert 0.01 < changed < 0.9, changed


@pytest.mark.parametrize('name', ['toy_cls', 'toy_glimpse'])
def test_classification_imagenet_layout(toy_data, name):
    root = osp.join(toy_data, name)
    classes = open(osp.join(root, 'meta', 'classes.txt')).read().split()
    assert len(classes) >= 10
    for split, per_class in (('train', 260), ('val', 40), ('test', 200)):
        lines = open(osp.join(root, 'meta', f'{split}.txt')).read().split(
            '\n')
        lines = [ln.split() for ln in lines if ln]
        labels = [int(lab) for _, lab in lines]
        assert np.bincount(labels).tolist() == [per_class] * len(classes)
        for rel, _ in lines:
            assert osp.isfile(osp.join(root, split, rel))
    # train: one folder per class name (ImageNet's n01440764/ layout)
    assert sorted(os.listdir(osp.join(root, 'train'))) == sorted(classes)


def test_segmentation_ade_layout(toy_data):
    root = osp.join(toy_data, 'toy_seg')
    for split in ('training', 'validation'):
        imgs = sorted(glob.glob(osp.join(root, 'images', split, '*.jpg')))
        assert imgs
        seen = set()
        for path in imgs:
            ann = path.replace('images', 'annotations').replace('.jpg',
                                                                 '.png')
            lab = np.asarray(Image.open(ann))
            assert lab.shape == Image.open(path).size[::-1]
            seen |= set(np.unique(lab).tolist())
        # 0 = other (ignored), 1..6 = the classes
        assert seen <= set(range(len(make_toy_data.SEG_CLASSES) + 1))
        assert set(range(1, 7)) <= seen


MARKET = re.compile(r'^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$')


def test_reid_market_layout_and_parsing(toy_data):
    root = osp.join(toy_data, 'toy_reid')
    ids = {}
    for sub in ('bounding_box_train', 'bounding_box_test', 'query'):
        names = sorted(os.listdir(osp.join(root, sub)))
        assert names
        for name in names:
            m = MARKET.match(name)
            assert m, name
            ids.setdefault(sub, []).append((m.group(1), int(m.group(2))))
            parse = np.asarray(Image.open(osp.join(
                root, 'parsing', sub, name[:-4] + '.png')))
            assert parse.shape == (128, 64)
            assert set(np.unique(parse).tolist()) <= set(range(5))
    gallery_ids = {p for p, _ in ids['bounding_box_test']}
    assert {'-1', '0000'} <= gallery_ids  # junk and distractors
    train_ids = {p for p, _ in ids['bounding_box_train']}
    query_ids = {p for p, _ in ids['query']}
    assert len(train_ids) >= 20 and not train_ids & query_ids
    assert len({c for _, c in ids['bounding_box_test']}) == 6
    for pid in query_ids:  # each query id is in the gallery
        assert pid in gallery_ids


@pytest.mark.parametrize('scope,config', [
    ('mmdet', 'configs/_base_/datasets/toy_det.py'),
    ('mmpretrain', 'configs/_base_/datasets/toy_cls.py'),
    ('mmpretrain', 'configs/_base_/datasets/toy_glimpse.py'),
    ('mmseg', 'configs/_base_/datasets/toy_seg.py'),
])
def test_host_dataset_classes_read_the_toy_data(toy_data, scope, config):
    from mmengine.config import Config
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(scope)
    cfg = Config.fromfile(osp.join(ROOT, config))
    for key in ('train_dataloader', 'val_dataloader'):
        ds = DATASETS.build(cfg[key]['dataset'])
        assert len(ds) > 0
        item = ds[0]
        assert item['inputs'].ndim == 3
        sample = item['data_samples']
        if scope == 'mmdet':
            assert len(sample.gt_instances) > 0
        elif scope == 'mmpretrain':
            assert 0 <= int(sample.gt_label) < 10
        else:
            seg = sample.gt_sem_seg.data
            # reduce_zero_label: 0 -> 255 (ignored), 1..6 -> 0..5
            assert set(seg.unique().tolist()) <= set(range(6)) | {255}

# Copyright (c) EVLab contributors.
"""The user's own command, `python tools/train.py
configs/defeat/retinanet_r50.py`, on a machine without COCO or without
network: one clear error line each, naming what to do."""
import json
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
CONFIG = osp.join(ROOT, 'configs', 'defeat', 'retinanet_r50.py')
# port 9 (discard) on this machine: the connection is refused at once, as
# any download is on a machine without network
NO_NETWORK_URL = 'http://127.0.0.1:9/retinanet_r101_fpn_2x_coco.pth'


def _one_error_line(res):
    err = res.stderr
    assert res.returncode == 2, res.stdout[-2000:] + err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, err
    return lines[0]


def test_without_coco_names_the_folder_and_the_toy_config(tool, tmp_path):
    line = _one_error_line(tool([TRAIN, CONFIG], cwd=str(tmp_path)))
    assert 'data/coco/' in line, line
    assert 'instances_train2017.json' in line, line  # what goes where
    assert 'configs/defeat/toy_retinanet_defeat.py' in line, line


def _fake_coco(toy_data, root):
    """data/coco with the toy val images under COCO's names and layout."""
    from mmdet.datasets import CocoDataset
    coco = osp.join(root, 'data', 'coco')
    os.makedirs(osp.join(coco, 'annotations'))
    src = osp.join(toy_data, 'toy_det')
    with open(osp.join(src, 'annotations', 'instances_val.json')) as f:
        ann = json.load(f)
    names = CocoDataset.METAINFO['classes']
    for cat in ann['categories']:
        cat['name'] = names[cat['id'] - 1]
    for split in ('train2017', 'val2017'):
        with open(osp.join(coco, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(ann, f)
        os.symlink(osp.join(src, 'val'), osp.join(coco, split))


def test_teacher_download_without_network_names_url_and_override(
        tool, toy_data, tmp_path):
    _fake_coco(toy_data, str(tmp_path))
    res = tool([TRAIN, CONFIG, '--work-dir', str(tmp_path / 'work'),
                '--cfg-options', f'model.teacher_ckpt={NO_NETWORK_URL}',
                'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False',
                'val_dataloader.num_workers=0',
                'val_dataloader.persistent_workers=False'],
               cwd=str(tmp_path))
    line = _one_error_line(res)
    assert NO_NETWORK_URL in line, line
    assert '--cfg-options model.teacher_ckpt=PATH' in line, line
    assert 'teacher' in line, line

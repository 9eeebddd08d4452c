# Copyright (c) EVLab contributors.
"""tools/misc/demo.py: the result table (mean and spread over seeds), the
gain line, the reuse of finished steps keyed on config and data version,
and the two pictures; the training itself is `make demo`."""
import importlib.util
import json
import os.path as osp

import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LABELS = {'teacher': 'teacher  T', 'student': 'student  S alone',
          'defeat': 'student  + DeFeat'}


@pytest.fixture(scope='module')
def demo():
    spec = importlib.util.spec_from_file_location(
        'evlab_demo', osp.join(ROOT, 'tools', 'misc', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed, map_, minutes):
    return dict(seed=seed, train_min=minutes, checkpoint='x',
                metrics={m: map_ for m in
                         ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75',
                          'bbox_mAP_s', 'bbox_mAP_m')})


def test_fmt_mean_and_sample_spread(demo):
    assert demo.fmt([0.1]) == '0.100'
    # mean 0.2, sample standard deviation 0.1
    assert demo.fmt([0.1, 0.2, 0.3]) == '0.200 ± 0.100'
    assert demo.fmt([float('nan')]) == 'n/a'


def test_table_rows(demo):
    text = demo.table({'teacher': [_run(0, 0.3, float('nan'))],
                       'student': [_run(0, 0.1, 2.0), _run(1, 0.3, 4.0)],
                       'defeat': [_run(0, 0.2, 3.0), _run(1, 0.4, 5.0)]},
                      LABELS)
    lines = text.splitlines()
    assert len(lines) == 5
    assert '| 0.300 | 0.300 |' in lines[2] and '| n/a | 0 |' in lines[2]
    assert '0.200 ± 0.141' in lines[3] and '3.0 ± 1.4' in lines[3]
    assert lines[3].endswith('| 0,1 |')
    assert '0.300 ± 0.141' in lines[4]


def test_gain_per_seed_and_its_sign(demo):
    results = {'student': [_run(0, 0.10, 1), _run(1, 0.20, 1)],
               'defeat': [_run(1, 0.26, 1), _run(0, 0.12, 1)]}
    # matched by seed, not by position
    assert demo.gains(results) == pytest.approx([0.06, 0.02])
    line = demo.gain_line(results)
    assert line.startswith('Distilled student ahead of')
    assert '0.040 ± 0.028' in line and '+27% relative' in line
    results['defeat'][1] = _run(0, 0.09, 1)
    assert 'NOT always ahead' in demo.gain_line(results)


def test_finished_steps_are_reused_only_when_unchanged(demo, tmp_path,
                                                       monkeypatch):
    ckpt = tmp_path / 'epoch_8.pth'
    ckpt.write_bytes(b'')
    config = 'configs/defeat/toy_retinanet_student.py'
    work = tmp_path / 'w'
    done = _run(0, 0.25, 1.5)
    done.update(checkpoint=str(ckpt),
                key=demo.config_key(config, ['randomness.seed=0']))

    def finished():
        work.mkdir(exist_ok=True)
        (work / 'demo_result.json').write_text(json.dumps(done))

    def no_run(cmd):
        raise AssertionError(f'should not run {cmd}')

    monkeypatch.setattr(demo, 'run', no_run)
    finished()
    got = demo.train_and_test('student', config, str(work), 0, [],
                              reuse=True)
    assert got['metrics']['bbox_mAP'] == 0.25
    # another seed or option, no reuse (the students of a plain
    # `make demo`), another data version: trained again
    cases = [dict(seed=1, options=[], reuse=True),
             dict(seed=0, options=['model.neck.out_channels=8'],
                  reuse=True),
             dict(seed=0, options=[], reuse=False)]
    for kwargs in cases:
        finished()
        with pytest.raises(AssertionError, match='should not run'):
            demo.train_and_test('student', config, str(work), **kwargs)
    # a result whose checkpoint is gone is redone
    finished()
    ckpt.unlink()
    with pytest.raises(AssertionError, match='should not run'):
        demo.train_and_test('student', config, str(work), 0, [],
                            reuse=True)
    ckpt.write_bytes(b'')
    finished()
    monkeypatch.setitem(demo.TOY_DATA_VERSIONS, 'det', 999)
    with pytest.raises(AssertionError, match='should not run'):
        demo.train_and_test('student', config, str(work), 0, [],
                            reuse=True)


def test_curves_picture(demo, tmp_path):
    curves = {'teacher': [[[2, 0.1], [4, 0.3]]],
              'student': [[[2, 0.05], [4, 0.1]], [[2, 0.06], [4, 0.12]]],
              'defeat': [[]]}
    out = demo.draw_curves(curves, LABELS, str(tmp_path / 'c.png'))
    assert Image.open(out).size == (768, 504)


def test_detections_picture_draws_ground_truth_and_models(
        demo, tmp_path, monkeypatch):
    """The grid: a row per image, the ground truth then one column per
    model, each box in its class colour (inference faked: the drawing is
    what is tested here)."""
    import mmdet.apis
    import torch
    from mmengine.structures import InstanceData
    Image.new('RGB', (40, 32), 'white').save(tmp_path / 'a.jpg')
    ann = dict(images=[dict(id=1, file_name='a.jpg', width=40, height=32)],
               annotations=[dict(image_id=1, category_id=2,
                                 bbox=[4, 4, 10, 10])])
    (tmp_path / 'ann.json').write_text(json.dumps(ann))

    class Sample:
        pred_instances = InstanceData(
            bboxes=torch.tensor([[20., 10., 30., 20.], [0., 0., 5., 5.]]),
            labels=torch.tensor([0, 1]), scores=torch.tensor([0.9, 0.1]))

    monkeypatch.setattr(mmdet.apis, 'init_detector', lambda *a, **k: None)
    monkeypatch.setattr(mmdet.apis, 'inference_detector',
                        lambda model, path: Sample())
    out = demo.draw_detections(
        [dict(label='m', config='c', checkpoint='k', options=[])],
        str(tmp_path / 'd.png'), str(tmp_path / 'ann.json'), str(tmp_path),
        ('one', 'two'), image_ids=(1,))
    img = Image.open(out).convert('RGB')
    zoom, pad, head = 3, 6, 22
    assert img.size == (2 * (40 * zoom + pad) + pad,
                        head + 32 * zoom + 2 * pad)
    palette = [(230, 25, 75), (0, 130, 200)]
    # ground truth: class 2 ('two') box outline at x = 4 in column 0
    assert img.getpixel((pad + 4 * zoom, head + 9 * zoom)) == palette[1]
    # the model's detection of class 1 above the score threshold ...
    x0 = pad + 40 * zoom + pad
    assert img.getpixel((x0 + 20 * zoom, head + 15 * zoom)) == palette[0]
    # ... and not the one below it
    assert img.getpixel((x0 + 5 * zoom, head + 3 * zoom)) == (255, 255, 255)

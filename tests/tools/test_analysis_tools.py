# Copyright (c) EVLab contributors.
"""The analysis and deployment tools on a toy config of each host:
get_flops (published FLOPs of ResNet-50 and DeiT-Ti, the SDPA handle, the
TNT closed form, distillers), benchmark (PyTorch and onnxruntime),
analyze_logs (curves of several runs, train time), browse_dataset
(pictures of each host's annotations) and pytorch2onnx (parity with
PyTorch within 1e-4, the failing op named)."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
for _path in ('tools/analysis_tools', 'tools/deployment'):
    sys.path.insert(0, osp.join(ROOT, _path))
try:
    import analyze_logs
    import benchmark
    import browse_dataset
    import get_flops
    import pytorch2onnx
finally:
    del sys.path[:2]

from projects.common.analysis import (  # noqa: E402
    AnalysisError,
    build_deployed,
    input_shape,
)
from projects.common.errors import EVLabError  # noqa: E402
from projects.common.runtime import load_config  # noqa: E402

TOY = {
    'mmpretrain': 'configs/ghostnet/ghostnet-0.5x_toy_cls.py',
    'mmdet': 'configs/defeat/toy_retinanet_student.py',
    'mmdet-two-stage': 'configs/defeat/toy_faster_rcnn_student.py',
    'mmseg': 'configs/issa/issa_r18-d16_toy_seg.py',
}
CLASSIFIERS = {
    'ghostnet': 'configs/ghostnet/ghostnet-0.5x_toy_cls.py',
    'tnt': 'configs/tnt/tnt_toy_cls.py',
    'vit': 'configs/manifold_kd/toy_vit_student.py',
}


def _cfg(path: str):
    return load_config(path if '::' in path else osp.join(ROOT, path))


# -- get_flops ---------------------------------------------------------------
@pytest.mark.parametrize('config, published', [
    ('mmpretrain::resnet/resnet50_8xb32_in1k.py', 4.1e9),
    ('mmpretrain::deit/deit-tiny_4xb256_in1k.py', 1.25e9),
])
def test_flops_equal_published_figures(config, published):
    # ResNet-50: 4.1 G (He et al.; torchvision), DeiT-Ti: 1.25 G (DeiT's
    # table 1 rounds to 1.3; mmpretrain's zoo says 1.26)
    result = get_flops.analyse(_cfg(config), (224, 224))
    row = result['parts']['model']
    assert abs(row['macs_mmengine'] - published) / published < 0.015
    assert abs(row['macs_zoo'] - published) / published < 0.015
    assert not {op for op in row['unsupported']
                if not get_flops.is_elementwise(op)}


def test_sdpa_handle_counts_the_attention_products():
    # without the handle mmengine skips scaled_dot_product_attention:
    # DeiT-Ti has 12 layers of 3 heads, 197 tokens, 64 dims per head:
    # q k^T and attn v cost 197 * 197 * (64 + 64) MACs per head
    cfg = _cfg('mmpretrain::deit/deit-tiny_4xb256_in1k.py')
    with_handle = get_flops.analyse(cfg, (224, 224))['parts']['model']
    handles = dict(get_flops.EXTRA_HANDLES)
    del get_flops.EXTRA_HANDLES['aten::scaled_dot_product_attention']
    try:
        without = get_flops.analyse(cfg, (224, 224))['parts']['model']
    finally:
        get_flops.EXTRA_HANDLES.update(handles)
    assert without['unsupported'].get(
        'aten::scaled_dot_product_attention') == 12
    assert with_handle['macs_mmengine'] - without['macs_mmengine'] == \
        12 * 3 * 197 * 197 * 128


def test_tnt_closed_form_equals_the_count():
    # the count at 64x64 (16 sentences) keeps the test short; the formula
    # at 224x224 against the paper's 5.2 G
    cfg = _cfg('configs/tnt/tnt-s-p16_8xb128_in1k.py')
    row = get_flops.analyse(cfg, (64, 64))['parts']['model']
    assert row['analytic']['formula'] == row['analytic']['counted']
    model = build_deployed(cfg, 'meta')
    assert abs(model.backbone.analytic_macs((224, 224)) - 5.2e9) < 0.05e9


@pytest.mark.parametrize('host', sorted(TOY))
def test_get_flops_on_each_host(host, capsys, tmp_path):
    out = tmp_path / 'flops.json'
    get_flops.main([osp.join(ROOT, TOY[host]), '--json', str(out),
                    '--by-module', '1'])
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    row = result['parts']['model']
    assert row['params'] == sum(
        p.numel() for p in build_deployed(_cfg(TOY[host])).parameters())
    # the two conventions differ by norms, pooling and interpolation only
    assert 0 < row['macs_zoo'] <= row['macs_mmengine'] < \
        1.1 * row['macs_zoo']
    assert f'{row["macs_mmengine"] / 1e9:.3f} G' in text
    assert any(name.startswith('model.backbone') for name in
               row['by_module'])
    assert not {op for op in row['unsupported']
                if not get_flops.is_elementwise(op)}, row['unsupported']


def test_get_flops_of_a_distiller_counts_the_student(capsys):
    cfg = _cfg('configs/defeat/toy_retinanet_defeat.py')
    shape = input_shape(cfg)
    parts = get_flops.analyse(cfg, shape)['parts']
    alone = get_flops.analyse(_cfg('configs/defeat/toy_retinanet_student.py'),
                              shape)['parts']['model']
    teacher = get_flops.analyse(
        _cfg('configs/defeat/toy_retinanet_teacher.py'),
        shape)['parts']['model']
    for key in ('params', 'macs_zoo', 'macs_mmengine'):
        assert parts['student'][key] == alone[key]
        assert parts['teacher'][key] == teacher[key]
    assert parts['teacher']['macs_zoo'] > 3 * parts['student']['macs_zoo']
    text = get_flops.report(dict(config='x', input=[1, 3, *shape],
                                 parts=parts))
    assert 'teacher (not deployed)' in text


def test_input_shape_follows_the_configs():
    assert input_shape(_cfg('configs/tnt/tnt-s-p16_8xb128_in1k.py')) == \
        (224, 224)  # CenterCrop
    assert input_shape(_cfg(TOY['mmpretrain'])) == (64, 64)  # train crop
    # mmdet's Resize (1333, 800), padded to 32 by the data preprocessor
    assert input_shape(_cfg('configs/defeat/retinanet_r50.py')) == \
        (800, 1344)


# -- benchmark ---------------------------------------------------------------
@pytest.mark.parametrize('host', ['mmpretrain', 'mmdet', 'mmseg'])
def test_benchmark_on_each_host(host, capsys, tmp_path):
    out = tmp_path / 'bench.json'
    benchmark.main([osp.join(ROOT, TOY[host]), '--batch-size', '2',
                    '--repeats', '3', '--warmup', '1', '--json', str(out)])
    result = json.loads(out.read_text())
    assert [r['batch'] for r in result['rows']] == [1, 2]
    for r in result['rows']:
        assert r['n'] == 3 and 0 < r['p25'] <= r['median'] <= r['p75']
        assert r['images_per_s'] == pytest.approx(r['batch'] / r['median'])
    assert '| batch | median (ms)' in capsys.readouterr().out


def test_benchmark_onnxruntime_backend(tmp_path):
    result = benchmark.benchmark(_cfg(CLASSIFIERS['ghostnet']),
                                 backend='onnxruntime', batch_size=2,
                                 repeats=3, warmup=1)
    assert result['backend'] == 'onnxruntime'
    assert [r['batch'] for r in result['rows']] == [1, 2]
    assert all(r['median'] > 0 for r in result['rows'])


# -- analyze_logs ------------------------------------------------------------
def _write_log(work_dir, time_per_iter, maps):
    """An mmengine JSON log: 2 epochs of 2 logged train lines, a
    validation after each epoch."""
    run = work_dir / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    lines, step = [], 0
    for epoch in (1, 2):
        for t in time_per_iter[epoch - 1]:
            step += 50
            lines.append(dict(lr=0.01, loss=2.0 / step, time=t, epoch=epoch,
                              iter=step, step=step))
        lines.append({'coco/bbox_mAP': maps[epoch - 1], 'time': 0.1,
                      'step': epoch})
    (run / 'scalars.json').write_text(
        '\n'.join(json.dumps(x) for x in lines) + '\n')
    return str(work_dir)


def test_plot_curve_of_several_runs(tmp_path, capsys):
    a = _write_log(tmp_path / 'run_a', [[9., 1.], [9., 3.]], [0.1, 0.2])
    b = _write_log(tmp_path / 'run_b', [[1., 1.], [1., 1.]], [0.3, 0.4])
    out = tmp_path / 'curves.png'
    analyze_logs.main(['plot_curve', a, b, '--keys', 'bbox_mAP', 'loss',
                       '--out', str(out)])
    from PIL import Image
    img = np.asarray(Image.open(out).convert('RGB'))
    assert img.shape[1] > 1.5 * img.shape[0]  # two panels side by side
    assert img.std() > 10
    log = analyze_logs.load_log(a)
    assert analyze_logs.series(log, 'bbox_mAP')[:2] == ([1, 2], [0.1, 0.2])
    assert analyze_logs.series(log, 'loss')[0] == [50, 100, 150, 200]
    assert analyze_logs.run_name(a) == 'run_a'
    with pytest.raises(EVLabError, match="no scalar 'top1'.*bbox_mAP"):
        analyze_logs.plot_curve([a], ['top1'], str(out))


def test_cal_train_time(tmp_path):
    a = _write_log(tmp_path / 'run_a', [[9., 1.], [9., 3.]], [0.1, 0.2])
    r, = analyze_logs.cal_train_time([a])
    # the first line of each epoch dropped: epoch means 1 and 3
    assert (r['fastest_epoch'], r['slowest_epoch']) == (1, 2)
    assert (r['fastest'], r['slowest'], r['mean'], r['std']) == \
        pytest.approx((1., 3., 2., 1.))
    r, = analyze_logs.cal_train_time([a], include_outliers=True)
    assert r['mean'] == pytest.approx((5. + 6.) / 2)


# -- browse_dataset ----------------------------------------------------------
@pytest.mark.parametrize('host', ['mmpretrain', 'mmdet', 'mmseg'])
def test_browse_dataset_draws_annotations(host, toy_data, tmp_path):
    from PIL import Image
    cfg = _cfg(TOY[host])
    files = browse_dataset.browse(cfg, str(tmp_path), 'val', num=2)
    assert len(files) == 3 and files[-1].endswith('browse_val.png')
    from mmengine.registry import DATASETS, DefaultScope
    with DefaultScope.overwrite_default_scope(host):
        item = DATASETS.build(cfg.val_dataloader.dataset)[0]
    raw = browse_dataset._rgb(item['inputs'])
    drawn = np.asarray(Image.open(files[0]).convert('RGB'))
    if drawn.shape == raw.shape:  # boxes / label map drawn over the image
        changed = (np.abs(drawn.astype(int) - raw).sum(-1) > 30).mean()
        assert changed > 0.01
    else:  # mmpretrain: enlarged, with the class written on it
        assert drawn.shape[0] > raw.shape[0]


def test_browse_dataset_draws_reid_identities_and_part_maps(toy_data,
                                                           tmp_path):
    from PIL import Image
    cfg = _cfg(osp.join(ROOT, 'configs', 'p2net', 'toy_p2net_dpb.py'))
    # val: no random flip, so the item below is the one drawn
    files = browse_dataset.browse(cfg, str(tmp_path), 'val', num=2)
    assert len(files) == 3
    from mmengine.registry import DATASETS, DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        item = DATASETS.build(cfg.val_dataloader.dataset)[0]
    h, w = item['inputs'].shape[1:]
    drawn = np.asarray(Image.open(files[0]).convert('RGB'))
    # caption, then image and part map side by side at twice the size
    assert drawn.shape[:2] == (2 * h + 28, 2 * 2 * w)
    part = item['data_samples'].gt_part_map.numpy()
    image = drawn[28::2, :2 * w:2].astype(float)
    assert (image == browse_dataset._rgb(item['inputs'])).all()
    overlay = drawn[28::2, 2 * w::2].astype(float)
    # each pixel blends the image with its part label's colour (background
    # darkened): the map drawn is the map the model gets, pixel for pixel
    colour = browse_dataset.PART_COLOURS[part].astype(float)
    want = np.where(part[..., None] > 0, 0.35 * image + 0.65 * colour,
                    0.35 * image)
    assert np.abs(overlay - want).max() <= 1.0
    assert set(np.unique(part)) >= {0, 1, 2, 3, 4}


def test_browse_dataset_names_a_missing_split(tmp_path):
    cfg = _cfg(TOY['mmpretrain'])
    cfg.test_dataloader = None
    with pytest.raises(AnalysisError, match='no test_dataloader'):
        browse_dataset.browse(cfg, str(tmp_path), 'test', config_path='x')


# -- pytorch2onnx ------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(CLASSIFIERS))
def test_onnx_export_matches_pytorch(name, tmp_path):
    cfg = _cfg(CLASSIFIERS[name])
    torch.manual_seed(0)
    model = build_deployed(cfg)
    # random weights of a non-trivial scale, so that the comparison is
    # not one of near-zero logits
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
        for b in model.buffers():
            if b.dtype.is_floating_point:
                b.uniform_(0.5, 1.5)
    out = str(tmp_path / f'{name}.onnx')
    pytorch2onnx.export(model, (1, 3, *input_shape(cfg)), out)
    x = torch.randn(3, 3, *input_shape(cfg))
    with torch.no_grad():
        ref = model(x, mode='tensor').numpy()
    sess = pytorch2onnx.ort_session(out)
    got, = sess.run(None, {'input': x.numpy()})
    assert ref.shape == (3, cfg.model.head.num_classes)
    assert ref.std() > 0.1
    assert np.abs(got - ref).max() <= 1e-4 * max(1., np.abs(ref).max())


def test_pytorch2onnx_cli(tmp_path, capsys):
    out = tmp_path / 'tnt.onnx'
    pytorch2onnx.main([osp.join(ROOT, CLASSIFIERS['tnt']), '--out',
                       str(out)])
    text = capsys.readouterr().out
    assert out.is_file() and 'max |diff|' in text


class _FFTModel(nn.Module):
    def forward(self, x, mode='tensor'):
        return torch.fft.fft2(x).abs()


def test_export_failure_names_the_op(tmp_path):
    out = tmp_path / 'bad.onnx'
    with pytest.raises(AnalysisError, match="op 'aten::fft_fft2' failed"):
        pytorch2onnx.export(_FFTModel(), (1, 3, 8, 8), str(out))
    assert not out.exists() and not (tmp_path / 'bad.onnx.tmp').exists()


def test_deployed_model_loads_a_distiller_checkpoint(tmp_path):
    # the tools deploy a distiller's student: its checkpoint's student.*
    # weights are loaded, the teacher's ignored
    cfg = _cfg('configs/defeat/toy_retinanet_defeat.py')
    torch.manual_seed(1)
    trained = build_deployed(cfg)
    state = {f'student.{k}': v for k, v in trained.state_dict().items()}
    state['teacher.backbone.conv1.weight'] = torch.zeros(1)
    path = tmp_path / 'distiller.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=6)), path)
    torch.manual_seed(2)
    loaded = build_deployed(cfg, checkpoint=str(path))
    for (k, a), b in zip(trained.state_dict().items(),
                         loaded.state_dict().values()):
        assert torch.equal(a, b), k

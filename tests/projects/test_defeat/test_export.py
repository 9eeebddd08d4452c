# Copyright (c) EVLab contributors.
"""tools/model_converters/distill_to_student.py: the student-only
checkpoint loads strictly into the plain mmdet detector and predicts
exactly what the distiller predicts."""
import os.path as osp

import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint

CONVERTER = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'tools', 'model_converters',
    'distill_to_student.py')


@pytest.mark.parametrize('kind', ['retinanet', 'faster_rcnn'])
def test_export_gives_the_plain_student(build_model, make_batch, script,
                                        tmp_path, kind):
    distiller = build_model(kind)
    with torch.no_grad():  # trained-looking BN statistics and weights
        for name, buf in distiller.student.named_buffers():
            if 'running_var' in name:
                buf.uniform_(0.5, 2.)
    src = tmp_path / 'epoch_1.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': distiller.state_dict(),
                'optimizer': {'state': {}, 'param_groups': []}}, src)
    dst = tmp_path / 'student.pth'
    result = script(CONVERTER, [str(src), str(dst)])
    assert result.returncode == 0, result.stderr
    ckpt = torch.load(dst, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert not any(k.startswith(('teacher.', 'neck_adapters.', 'student.'))
                   for k in ckpt['state_dict'])

    student = build_model(kind, 'student')
    load_checkpoint(student, str(dst), map_location='cpu', strict=True)
    for det in (distiller.student, student):
        # random weights score low: keep every box so there is much to compare
        head = det.roi_head if hasattr(det, 'roi_head') else det.bbox_head
        head.test_cfg.score_thr = 0.
    distiller.eval()
    student.eval()
    data = make_batch(distiller)
    with torch.no_grad():
        ours = distiller(**data, mode='predict')
        plain = student(**data, mode='predict')
    for a, b in zip(ours, plain):
        assert len(a.pred_instances) > 0
        assert torch.allclose(a.pred_instances.bboxes,
                              b.pred_instances.bboxes, atol=1e-5)
        assert torch.allclose(a.pred_instances.scores,
                              b.pred_instances.scores, atol=1e-5)
        assert torch.equal(a.pred_instances.labels, b.pred_instances.labels)


def test_export_refuses_non_distiller_checkpoints(build_model, script,
                                                  tmp_path):
    plain = tmp_path / 'plain.pth'
    torch.save({'state_dict': build_model('retinanet',
                                          'student').state_dict()}, plain)
    dst = tmp_path / 'out.pth'
    result = script(CONVERTER, [str(plain), str(dst)])
    assert result.returncode != 0
    assert 'plain.pth' in result.stderr and "'student.'" in result.stderr
    assert not dst.exists()
    result = script(CONVERTER, [str(plain), str(plain)])
    assert result.returncode != 0 and 'overwrite' in result.stderr
    assert torch.load(plain, weights_only=True)['state_dict']

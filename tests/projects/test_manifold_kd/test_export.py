# Copyright (c) EVLab contributors.
"""tools/model_converters/distill_to_student.py on a manifold KD
checkpoint: the student-only file loads strictly into the plain mmpretrain
ImageClassifier and predicts exactly what the distiller predicts."""
import os.path as osp

import torch
from mmengine.runner.checkpoint import load_checkpoint

CONVERTER = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'tools', 'model_converters',
    'distill_to_student.py')


def test_export_gives_the_plain_student(build_model, make_batch, script,
                                        tmp_path):
    distiller = build_model()
    with torch.no_grad():  # trained-looking weights (the head starts at 0)
        for p in distiller.student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    src = tmp_path / 'epoch_1.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': distiller.state_dict(),
                'optimizer': {'state': {}, 'param_groups': []}}, src)
    assert any(k.startswith('teacher.') for k in distiller.state_dict())
    dst = tmp_path / 'student.pth'
    result = script(CONVERTER, [str(src), str(dst)])
    assert result.returncode == 0, result.stderr
    ckpt = torch.load(dst, weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert not any(k.startswith(('teacher.', 'student.', 'kd_loss',
                                 'mf_loss')) for k in ckpt['state_dict'])

    student = build_model('student')
    assert type(student).__name__ == 'ImageClassifier'
    load_checkpoint(student, str(dst), map_location='cpu', strict=True)
    distiller.eval()
    student.eval()
    data = make_batch(distiller, batch=4, training=False)
    with torch.no_grad():
        ours = distiller(**data, mode='predict')
        plain = student(**data, mode='predict')
        logits = distiller(data['inputs'], mode='tensor')
    assert logits.std() > 1e-3  # not a constant prediction
    for a, b in zip(ours, plain):
        assert torch.allclose(a.pred_score, b.pred_score, atol=1e-6)
        assert torch.equal(a.pred_label, b.pred_label)

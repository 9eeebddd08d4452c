# Copyright (c) EVLab contributors.
"""ManifoldKDClassifier: frozen teacher, gradients to the student only,
no-KD equivalence with the plain student, the teacher sees the student's
mixed batch, pre-norm hooks, build-time errors."""
import copy

import pytest
import torch
import torch.nn.functional as F

from projects.common.distill import DistillError

KEYS = {'loss_cls', 'loss_kd', 'loss_mf_intra', 'loss_mf_inter',
        'loss_mf_rand'}


def test_teacher_stays_frozen_and_only_the_student_learns(build_model,
                                                          make_batch):
    model = build_model()
    teacher_state = copy.deepcopy(model.teacher.state_dict())
    student_state = copy.deepcopy(model.student.state_dict())
    model.train()
    assert model.student.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    optim = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1)
    for step in range(3):
        losses = model(**make_batch(model, seed=step), mode='loss')
        assert set(losses) == KEYS
        assert all(torch.isfinite(v) and v > 0 for v in losses.values())
        sum(losses.values()).backward()
        assert all(p.grad is None for p in model.teacher.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.student.backbone.parameters())
        optim.step()
        optim.zero_grad()
    # BN running statistics included: bit-identical after three steps
    after = model.teacher.state_dict()
    assert all(torch.equal(teacher_state[k], after[k]) for k in after)
    assert not any(m.training for m in model.teacher.modules())
    assert not all(torch.equal(student_state[k], v)
                   for k, v in model.student.state_dict().items())


@pytest.mark.parametrize('term', sorted(KEYS - {'loss_cls'}))
def test_every_distillation_term_reaches_the_student(build_model,
                                                     make_batch, term):
    model = build_model()
    model.train()
    # mmpretrain's ViT head starts at zero (no gradient behind it yet)
    torch.nn.init.normal_(model.student.head.layers.head.weight, std=0.02)
    losses = model(**make_batch(model), mode='loss')
    losses[term].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    grads = [p.grad for p in model.student.backbone.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_without_distillation_the_distiller_is_the_student(build_model,
                                                           make_batch,
                                                           monkeypatch):
    model = build_model(gt_weight=1.0, kd_weight=0.0, mf_weight=0.0)
    student = build_model('student')
    student.load_state_dict(model.student.state_dict())
    model.train()
    student.train()

    def no_teacher(*args, **kwargs):
        raise AssertionError('the teacher ran without any KD term')
    monkeypatch.setattr(model.teacher, 'forward', no_teacher)
    data = make_batch(model)
    ours = model(**copy.deepcopy(data), mode='loss')
    ref = student(**copy.deepcopy(data), mode='loss')
    assert set(ours) == {'loss_cls'} and set(ref) == {'loss'}
    assert torch.allclose(ours['loss_cls'], ref['loss'], atol=1e-6)
    # gt_weight scales it
    model.gt_weight = 0.5
    half = model(**copy.deepcopy(data), mode='loss')['loss_cls']
    assert torch.allclose(half, 0.5 * ref['loss'], atol=1e-6)


def test_teacher_sees_the_mixed_batch_and_ce_uses_mixed_labels(
        build_model, make_batch, monkeypatch):
    mixup = {'student.train_cfg': dict(augments=[dict(type='Mixup',
                                                      alpha=1.0)])}
    model = build_model(**mixup)
    model.train()
    torch.manual_seed(0)
    data = make_batch(model, batch=6)
    plain = make_batch(model, batch=6, training=False)
    # the preprocessor mixed the images and made soft labels
    assert not torch.allclose(data['inputs'], plain['inputs'])
    assert 'gt_score' in data['data_samples'][0]
    seen = {}
    for name in ('teacher', 'student'):
        net = getattr(model, name)
        forward = net.forward

        def spy(inputs, *args, _name=name, _forward=forward, **kwargs):
            seen[_name] = inputs
            return _forward(inputs, *args, **kwargs)
        monkeypatch.setattr(net, 'forward', spy)
    losses = model(**data, mode='loss')
    assert seen['teacher'] is data['inputs']
    assert seen['student'] is data['inputs']
    with torch.no_grad():
        logits = model.student(data['inputs'], mode='tensor')
    scores = torch.stack([ds.gt_score for ds in data['data_samples']])
    assert not torch.all(scores.max(1).values == 1)  # really mixed
    ce = -(scores * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(losses['loss_cls'], ce, atol=1e-5)


def test_hooks_record_pre_norm_block_outputs(build_model):
    from projects.common.distill import recording
    model = build_model()
    model.eval()
    backbone = model.student.backbone
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), recording(model.student,
                                    ['backbone.layers.3']) as rec:
        out = backbone(x)[-1]  # the final-normed class token
        last = rec['backbone.layers.3']
    assert last.shape == (2, 17, 64)  # cls + 4x4 patches
    assert not torch.allclose(last[:, 0], out, atol=1e-3)
    assert torch.allclose(backbone.ln1(last)[:, 0], out, atol=1e-6)


def test_build_time_errors(build_model):
    with pytest.raises(DistillError, match='backbone.layers.9'):
        build_model(layer_pairs=[('backbone.layers.9', 'backbone.layers.1')])
    with pytest.raises(DistillError, match='backbone.nolayer'):
        build_model(layer_pairs=[('backbone.layers.1', 'backbone.nolayer')])
    with pytest.raises(DistillError, match='needs layer_pairs'):
        build_model(layer_pairs=[])
    with pytest.raises(DistillError, match='random teacher'):
        build_model(teacher_ckpt=None, allow_random_teacher=False)


def test_teacher_from_a_deit_style_checkpoint(build_model, tmp_path):
    # {'model': ...} with DDP `module.` keys, as the DeiT/CaiT release
    donor = build_model('teacher')
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(0.5)
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'model': {f'module.{k}': v
                          for k, v in donor.state_dict().items()}}, ckpt)
    model = build_model(teacher_ckpt=str(ckpt), allow_random_teacher=False)
    got = model.teacher.state_dict()
    assert all(torch.equal(v, got[k]) for k, v in donor.state_dict().items())


def test_one_data_preprocessor(build_model):
    # the Runner's top-level preprocessor goes to the student; the
    # student's preprocessor is the distiller's
    model = build_model()
    assert model.data_preprocessor is model.student.data_preprocessor
    assert torch.allclose(model.data_preprocessor.mean.flatten(),
                          torch.full((3, ), 127.5))
    with pytest.raises(DistillError, match='one place only'):
        build_model(data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[0., 0., 0.],
            std=[1., 1., 1.], num_classes=10))

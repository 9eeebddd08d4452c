# Copyright (c) EVLab contributors.
"""DeFeatDistiller: frozen teacher, no-KD equivalence with the plain
student, the RoI label fix, loss keys, KD-only training."""
import copy

import pytest
import torch

from projects.common.distill import DistillError

KINDS = ('retinanet', 'faster_rcnn')


def _finite(losses: dict) -> bool:
    return all(
        torch.isfinite(v).all() if torch.is_tensor(v) else all(
            torch.isfinite(x).all() for x in v) for v in losses.values())


def _total(losses: dict) -> torch.Tensor:
    return sum(
        v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
        for k, v in losses.items() if 'loss' in k)


@pytest.mark.parametrize('kind', KINDS)
def test_teacher_stays_frozen(build_model, make_batch, kind):
    model = build_model(kind)
    teacher_state = copy.deepcopy(model.teacher.state_dict())
    model.train()
    assert model.student.training and model.neck_adapters.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    data = make_batch(model)
    losses = model(**data, mode='loss')
    expected = {'loss_defeat_neck_fg', 'loss_defeat_neck_bg'}
    if kind == 'faster_rcnn':
        expected |= {'loss_defeat_roi_fg', 'loss_defeat_roi_bg'}
    assert expected <= set(losses) and _finite(losses)
    assert all(losses[k] > 0 for k in expected)
    optim = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1)
    _total(losses).backward()
    optim.step()
    assert all(p.grad is None for p in model.teacher.parameters())
    # BN running statistics included: bit-identical after a step
    after = model.teacher.state_dict()
    assert all(torch.equal(teacher_state[k], after[k]) for k in after)
    # the student did learn something
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.neck_adapters.parameters())


def test_init_weights_loads_and_keeps_the_teacher(build_model, tmp_path):
    donor = build_model('retinanet', 'teacher')
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(0.5)
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': donor.state_dict(), 'meta': {}}, ckpt)
    model = build_model('retinanet', teacher_ckpt=str(ckpt),
                        allow_random_teacher=False)
    got = model.teacher.state_dict()
    assert all(torch.equal(v, got[k]) for k, v in donor.state_dict().items())
    # the runner calls init_weights once more on resume-less starts: the
    # teacher is never re-initialised
    model.init_weights()
    got = model.teacher.state_dict()
    assert all(torch.equal(v, got[k]) for k, v in donor.state_dict().items())


def test_teacher_checkpoint_errors_name_the_file(build_model, tmp_path):
    with pytest.raises(DistillError, match='random teacher'):
        build_model('retinanet', teacher_ckpt=None,
                    allow_random_teacher=False)
    missing = tmp_path / 'nope.pth'
    with pytest.raises(DistillError, match='nope.pth'):
        build_model('retinanet', teacher_ckpt=str(missing),
                    allow_random_teacher=False)
    wrong = tmp_path / 'student.pth'
    torch.save({'state_dict': build_model('retinanet',
                                          'student').state_dict()}, wrong)
    with pytest.raises(DistillError, match='student.pth.*does not fit'):
        build_model('retinanet', teacher_ckpt=str(wrong),
                    allow_random_teacher=False)


@pytest.mark.parametrize('kind', KINDS)
def test_without_kd_the_distiller_is_the_student(build_model, make_batch,
                                                 kind):
    # every KD term disabled (not weighted 0: teacher-side sampling would
    # consume random numbers): the loss dict is the plain student's
    off = dict(neck_kd=False)
    if kind == 'faster_rcnn':
        off['roi_kd'] = False
    model = build_model(kind, **off)
    student = build_model(kind, 'student')
    student.load_state_dict(model.student.state_dict())
    model.train()
    student.train()
    data = make_batch(model)
    torch.manual_seed(3)
    ours = model(**copy.deepcopy(data), mode='loss')
    torch.manual_seed(3)
    ref = student(**copy.deepcopy(data), mode='loss')
    assert set(ours) == set(ref)
    for k, v in ref.items():
        a = ours[k] if torch.is_tensor(v) else torch.stack(ours[k])
        b = v if torch.is_tensor(v) else torch.stack(v)
        assert torch.allclose(a, b, atol=1e-6), k


def _propose(boxes_per_image, jitter: float):
    """A stub for rpn_head.predict_by_feat returning fixed proposals."""
    from mmengine.structures import InstanceData

    def predict_by_feat(*args, batch_img_metas, cfg=None, rescale=False,
                        **kwargs):
        out = []
        for boxes in boxes_per_image:
            b = boxes + jitter
            out.append(InstanceData(bboxes=b, scores=torch.ones(len(b)),
                                    labels=torch.zeros(len(b)).long()))
        return out
    return predict_by_feat


@pytest.mark.parametrize('source', ['teacher', 'student'])
def test_roi_kl_uses_the_labels_of_its_own_rois(build_model, make_batch,
                                                monkeypatch,
                                                 source):
    # The teacher's RPN proposes the ground-truth boxes (all foreground),
    # the student's proposes boxes far from any object (all background).
    # The official code paired the teacher's RoIs with the student's labels
    # (official issue #20); the labels must follow the RoIs.
    model = build_model('faster_rcnn', roi_source=source)
    model.student.roi_head.bbox_sampler.add_gt_as_proposals = False
    model.train()
    data = make_batch(model)
    gts = [ds.gt_instances.bboxes.clone() for ds in data['data_samples']]
    far = [torch.tensor([[0., 0., 2., 2.]]).repeat(4, 1) for _ in gts]
    monkeypatch.setattr(model.teacher.rpn_head, 'predict_by_feat',
                        _propose(gts, 0.5))
    monkeypatch.setattr(model.student.rpn_head, 'predict_by_feat',
                        _propose(far, 0.))
    seen = {}
    forward = model.roi_loss.forward

    def spy(student_logits, teacher_logits, labels):
        seen['labels'] = labels.clone()
        return forward(student_logits, teacher_logits, labels)

    monkeypatch.setattr(model.roi_loss, 'forward', spy)
    losses = model(**data, mode='loss')
    num_classes = model.student.roi_head.bbox_head.num_classes
    gt_labels = torch.cat([ds.gt_instances.labels
                           for ds in data['data_samples']])
    if source == 'teacher':
        assert sorted(seen['labels'].tolist()) == sorted(gt_labels.tolist())
        assert losses['loss_defeat_roi_bg'].item() == 0.
    else:
        assert (seen['labels'] == num_classes).all()
        assert losses['loss_defeat_roi_fg'].item() == 0.


def test_dense_head_kd_for_retinanet(build_model, make_batch):
    model = build_model('retinanet', dense_head_kd=dict(temperature=2.))
    model.train()
    losses = model(**make_batch(model), mode='loss')
    assert losses['loss_defeat_dense_fg'] > 0
    assert losses['loss_defeat_dense_bg'] > 0
    assert _finite(losses)


def test_wrong_terms_for_the_detector_type_are_refused(build_model,
                                                      configs_dir):
    with pytest.raises(DistillError, match='two-stage'):
        build_model('retinanet', roi_kd=True)
    with pytest.raises(DistillError, match='one-stage'):
        build_model('faster_rcnn', dense_head_kd=True)
    with pytest.raises(DistillError, match='both'):
        build_model('retinanet',
                    teacher=f'{configs_dir}/toy_faster_rcnn_teacher.py')


def test_kd_only_training_brings_the_student_to_the_teacher(build_model,
                                                           make_batch):
    # 15 steps on the neck loss alone: the adapted student features move
    # towards the teacher's on both regions
    model = build_model('retinanet')
    model.train()
    data = make_batch(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=3e-3)
    history = []
    for _ in range(15):
        x = model.student.extract_feat(data['inputs'])
        with torch.no_grad():
            tx = model.teacher.extract_feat(data['inputs'])
        fg, bg = model.neck_feature_loss(x, tx, data['data_samples'])
        optim.zero_grad()
        (fg + bg).backward()
        optim.step()
        history.append((fg.item(), bg.item()))
    assert history[-1][0] < 0.3 * history[0][0]
    assert history[-1][1] < 0.3 * history[0][1]


def test_predict_and_tensor_modes_are_the_student(build_model, make_batch):
    model = build_model('retinanet')
    model.eval()
    data = make_batch(model)
    with torch.no_grad():
        ours = model(**data, mode='predict')
        ref = model.student(**data, mode='predict')
        t_ours = model(data['inputs'], mode='tensor')
        t_ref = model.student(data['inputs'], mode='tensor')
    for a, b in zip(ours, ref):
        assert torch.equal(a.pred_instances.bboxes, b.pred_instances.bboxes)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)
    assert all(torch.equal(a, b) for a, b in zip(t_ours[0], t_ref[0]))
    model.predict_with = 'teacher'
    with torch.no_grad():
        teacher = model(**data, mode='predict')
        t_ref = model.teacher(**data, mode='predict')
    assert torch.equal(teacher[0].pred_instances.scores,
                       t_ref[0].pred_instances.scores)


def test_loss_decay_hook(build_model, make_batch):
    from projects.defeat import DeFeatLossDecayHook

    class Runner:
        epoch, max_epochs = 3, 12
        model = build_model('retinanet')

    hook = DeFeatLossDecayHook('linear')
    hook.before_train_epoch(Runner)
    assert Runner.model.kd_scale == pytest.approx(0.75)
    Runner.model.train()
    data = make_batch(Runner.model)
    decayed = Runner.model(**data, mode='loss')['loss_defeat_neck_bg']
    Runner.model.kd_scale = 1.0
    full = Runner.model(**data, mode='loss')['loss_defeat_neck_bg']
    assert decayed.item() == pytest.approx(0.75 * full.item(), rel=1e-5)
    assert DeFeatLossDecayHook('cosine').factor(6, 12) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        DeFeatLossDecayHook('step')

# Copyright (c) EVLab contributors.
"""Fine-grained manifold distillation of mmpretrain classifiers.

Paper: https://arxiv.org/abs/2107.01378 (NeurIPS 2022); official code:
huawei-noah/Efficient-Computing, ``Distillation/ManifoldKD``. Spec:
``manifold_kd.md``.

:class:`ManifoldKDClassifier` wraps an mmpretrain classifier (the student,
e.g. DeiT-Tiny) and a frozen teacher (an mmpretrain classifier or a timm
model through mmpretrain's ``TimmClassifier``, e.g. CaiT-S24) and trains
the student with

- ``loss_cls``: ``gt_weight`` x the student head's loss on the (mixed)
  ground truth (skipped when ``gt_weight == 0``, the released recipe);
- ``loss_kd``: ``kd_weight`` x ``T^2 KL(teacher || student)`` on logits;
- ``loss_mf_intra`` / ``_inter`` / ``_rand``: ``mf_weight`` x the manifold
  terms on the block outputs recorded at ``layer_pairs``.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.registry import MODELS
from torch import Tensor

from projects.common.distill import (
    BaseDistiller,
    DistillError,
    FeatureRecorder,
    ModelSpec,
    recording,
)

from .losses import ManifoldRelationLoss, SkipTokens, SoftTargetKDLoss


@MODELS.register_module()
class ManifoldKDClassifier(BaseDistiller):
    """A classifier distilled with soft logits and manifold relations.

    The data preprocessor is the student's: with batch augments in the
    student's ``train_cfg`` (Mixup / CutMix), :meth:`loss` receives the
    mixed images and soft labels, the teacher sees exactly that tensor and
    the ground-truth loss uses the mixed labels.

    Args:
        student (dict): the student classifier (``ImageClassifier``).
        teacher (str | dict): the teacher, see
            :func:`projects.common.distill.load_model_config`; its
            ``tensor`` mode must return logits (``ImageClassifier``,
            ``TimmClassifier``) and its data preprocessor must match the
            student's (same mean/std/RGB).
        teacher_ckpt (str, optional): the teacher's weights, loaded by
            ``init_weights``.
        layer_pairs (Sequence[tuple]): ``(student_path, teacher_path)``
            module paths whose outputs are compared, e.g.
            ``('backbone.layers.11', 'model.blocks.23')`` (pre-norm block
            outputs). Empty: no manifold terms.
        gt_weight (float): weight of the ground-truth loss. Defaults to 0.
        kd_weight (float): weight of the soft logit loss. Defaults to 1.
        mf_weight (float): weight of all manifold terms. Defaults to 1.
        temperature (float): soft KD temperature T. Defaults to 1.
        w_intra (float): intra-image (cross-patch) weight, paper's alpha.
            Defaults to 4.
        w_inter (float): inter-image (cross-sample) weight, paper's beta.
            Defaults to 0.1.
        w_rand (float): random-rows weight, paper's gamma. Defaults to 0.2.
        num_rand_rows (int): K of the random term. Defaults to 192.
        student_skip_tokens (int | str): leading student tokens dropped
            before the maps; ``'auto'`` drops the surplus of the model with
            more tokens (official rule). Defaults to 'auto'.
        teacher_skip_tokens (int | str): the same for the teacher.
            Defaults to 'auto'.
        allow_random_teacher (bool): smoke tests only. Defaults to False.
        predict_with (str): ``'student'`` or ``'teacher'``.
    """

    def __init__(self,
                 student: dict,
                 teacher: ModelSpec,
                 teacher_ckpt: Optional[str] = None,
                 layer_pairs: Sequence[Tuple[str, str]] = (),
                 gt_weight: float = 0.0,
                 kd_weight: float = 1.0,
                 mf_weight: float = 1.0,
                 temperature: float = 1.0,
                 w_intra: float = 4.0,
                 w_inter: float = 0.1,
                 w_rand: float = 0.2,
                 num_rand_rows: int = 192,
                 student_skip_tokens: SkipTokens = 'auto',
                 teacher_skip_tokens: SkipTokens = 'auto',
                 allow_random_teacher: bool = False,
                 predict_with: str = 'student',
                 init_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(
            student,
            teacher,
            teacher_ckpt=teacher_ckpt,
            allow_random_teacher=allow_random_teacher,
            predict_with=predict_with,
            init_cfg=init_cfg,
            data_preprocessor=data_preprocessor)
        pairs = [tuple(p) for p in layer_pairs]
        if any(len(p) != 2 for p in pairs):
            raise DistillError(f'layer_pairs must be (student_path, '
                               f'teacher_path) pairs, got {layer_pairs!r}')
        if mf_weight and not pairs:
            raise DistillError('mf_weight > 0 needs layer_pairs')
        if gt_weight and not hasattr(getattr(self.student, 'head', None),
                                     'loss_module'):
            raise DistillError(f'gt_weight > 0 needs a student head with a '
                               f'loss_module; {type(self.student).__name__} '
                               f'has none')
        self.layer_pairs: List[Tuple[str, str]] = pairs
        # resolve the paths now: a typo fails at build time, not mid-run
        FeatureRecorder(self.student, [s for s, _ in pairs])
        FeatureRecorder(self.teacher, [t for _, t in pairs])
        self.gt_weight = gt_weight
        self.kd_weight = kd_weight
        self.mf_weight = mf_weight
        self.kd_loss = SoftTargetKDLoss(tau=temperature,
                                        loss_weight=kd_weight)
        self.mf_loss = ManifoldRelationLoss(
            w_intra=w_intra,
            w_inter=w_inter,
            w_rand=w_rand,
            num_rand_rows=num_rand_rows,
            loss_weight=mf_weight,
            student_skip_tokens=student_skip_tokens,
            teacher_skip_tokens=teacher_skip_tokens)

    @staticmethod
    def _logits(out) -> Tensor:
        if not isinstance(out, Tensor):
            raise DistillError(
                f'the classifier\'s tensor mode returned '
                f'{type(out).__name__}, not one logits tensor (distilled '
                f'DeiT heads with two outputs are not supported)')
        return out

    def teacher_forward(self, inputs: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """Teacher logits and its features at the pairs, without grad."""
        use_mf = bool(self.mf_weight)
        paths = [t for _, t in self.layer_pairs] if use_mf else []
        with torch.no_grad(), recording(self.teacher, paths) as rec:
            logits = self._logits(self.teacher(inputs, mode='tensor'))
            feats = [rec[p] for p in paths]
        return logits, feats

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        use_mf = bool(self.mf_weight)
        use_teacher = use_mf or bool(self.kd_weight)
        if use_teacher:
            # the same (mixed-up) tensor as the student's
            t_logits, t_feats = self.teacher_forward(inputs)
        paths = [s for s, _ in self.layer_pairs] if use_mf else []
        with recording(self.student, paths) as rec:
            logits = self._logits(self.student(inputs, mode='tensor'))
            s_feats = [rec[p] for p in paths]

        losses = {}
        if self.gt_weight:
            losses['loss_cls'] = self.gt_weight * self.gt_loss(
                logits, data_samples)
        if self.kd_weight:
            losses['loss_kd'] = self.kd_loss(logits, t_logits)
        if use_mf:
            losses.update(self.mf_loss(s_feats, t_feats))
        return losses

    def gt_loss(self, logits: Tensor, data_samples: list) -> Tensor:
        """The student head's loss; with batch augments the targets are the
        mixed soft labels (``gt_score``), as in ``ClsHead``."""
        if 'gt_score' in data_samples[0]:
            target = torch.stack([ds.gt_score for ds in data_samples])
        else:
            target = torch.cat([ds.gt_label for ds in data_samples])
        return self.student.head.loss_module(
            logits, target, avg_factor=logits.size(0))

# Copyright (c) EVLab contributors.
"""The final fine-tune of a pruned ViT (spec 2.6): the pruned student
learns from the labels and from the frozen dense model's soft targets,
``gt_weight CE + kd_weight T^2 KL(p_dense || p_pruned)`` (0.5 / 0.5, T = 1
[re-derivation; the paper's schedule is unknown]). Built on the shared
distillation core (``projects/common/distill.py``): the teacher is a
frozen submodule loaded from its checkpoint, ``predict`` runs the student,
and ``tools/model_converters/distill_to_student.py`` strips the teacher
for release."""
from typing import Optional

import torch
from mmpretrain.registry import MODELS
from torch import Tensor

from ..common.distill import BaseDistiller, DistillError, soft_target_kd


@MODELS.register_module()
class PatchSlimDistillClassifier(BaseDistiller):
    """A pruned classifier fine-tuned with soft KD from its dense model.

    Args:
        student (dict): The pruned classifier (a ``PatchSlimViT``
            backbone with its keep lists), e.g. loaded from the search's
            ``pruned.pth``.
        teacher (str | dict): The dense model (a config or a model dict).
        teacher_ckpt (str, optional): The dense model's checkpoint.
        gt_weight (float): Weight of the label loss. Defaults to 0.5.
        kd_weight (float): Weight of the soft-target loss. Defaults to
            0.5.
        temperature (float): T. Defaults to 1.
        **kwargs: :class:`BaseDistiller`'s (``allow_random_teacher``,
            ``predict_with``, ``data_preprocessor``, ``init_cfg``).
    """

    def __init__(self, student: dict, teacher, teacher_ckpt:
                 Optional[str] = None, gt_weight: float = 0.5,
                 kd_weight: float = 0.5, temperature: float = 1.0,
                 **kwargs) -> None:
        super().__init__(student, teacher, teacher_ckpt=teacher_ckpt,
                         **kwargs)
        if temperature <= 0:
            raise DistillError(f'temperature must be > 0, got '
                               f'{temperature}')
        self.gt_weight, self.kd_weight = gt_weight, kd_weight
        self.temperature = temperature

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        losses = {}
        logits = self.student(inputs, mode='tensor')
        if self.gt_weight:
            if 'gt_score' in data_samples[0]:  # mixed-up soft labels
                target = torch.stack([ds.gt_score for ds in data_samples])
            else:
                target = torch.cat([ds.gt_label for ds in data_samples])
            losses['loss_cls'] = self.gt_weight * \
                self.student.head.loss_module(logits, target,
                                              avg_factor=logits.size(0))
        if self.kd_weight:
            with torch.no_grad():  # the same (mixed-up) tensor
                t_logits = self.teacher(inputs, mode='tensor')
            losses['loss_kd'] = self.kd_weight * soft_target_kd(
                logits, t_logits, self.temperature)
        return losses

# Copyright (c) EVLab contributors.
"""DeFeat's decoupled distillation losses (spec ``defeat.md`` 2.2-2.4).

Every loss returns an ``(object, background)`` pair, each already
multiplied by its weight, and computes in fp32 whatever the input dtype.
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class DecoupledFeatLoss(nn.Module):
    """Feature imitation split into object and background regions.

    Per level ``l`` with ``D = (phi(S) - T)^2`` and the object mask ``M``
    broadcast over channels::

        obj_l = sum(D * M)       / max(1, 2 * C * sum(M))
        bg_l  = sum(D * (1 - M)) / max(1, 2 * C * sum(1 - M))

    i.e. half the mean squared error over each region, normalised per level
    over the whole batch; the levels are then averaged (official code).

    Args:
        obj_weight (float): alpha_obj. Defaults to 4 (COCO).
        bg_weight (float): alpha_bg. Defaults to 16 (COCO; always 4x obj).
    """

    def __init__(self, obj_weight: float = 4.0, bg_weight: float = 16.0):
        super().__init__()
        self.obj_weight = obj_weight
        self.bg_weight = bg_weight

    def forward(self, student_feats: Sequence[Tensor],
                teacher_feats: Sequence[Tensor],
                masks: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Args: adapted student maps, teacher maps (N, C, H, W) per level,
        and object masks (N, H, W) per level."""
        if not (len(student_feats) == len(teacher_feats) == len(masks)):
            raise ValueError(
                f'{len(student_feats)} student levels, {len(teacher_feats)} '
                f'teacher levels and {len(masks)} masks')
        obj_terms, bg_terms = [], []
        for s, t, m in zip(student_feats, teacher_feats, masks):
            if s.shape != t.shape:
                raise ValueError(f'student map {tuple(s.shape)} and teacher '
                                 f'map {tuple(t.shape)} differ')
            diff = (s.float() - t.float()).pow(2).sum(dim=1)  # over C
            m = m.to(diff)
            channels = s.size(1)
            obj_sum = (diff * m).sum()
            bg_sum = diff.sum() - obj_sum
            n_obj = m.sum()
            n_bg = m.numel() - n_obj
            obj_terms.append(obj_sum / (2 * channels * n_obj).clamp(min=1))
            bg_terms.append(bg_sum / (2 * channels * n_bg).clamp(min=1))
        obj = torch.stack(obj_terms).mean()
        bg = torch.stack(bg_terms).mean()
        return self.obj_weight * obj, self.bg_weight * bg


def _kl_rows(student_logits: Tensor, teacher_logits: Tensor,
             temperature: float) -> Tensor:
    """KL(softmax(t / T) || softmax(s / T)) per row."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_q = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return (log_q.exp() * (log_q - log_p)).sum(dim=1)


@MODELS.register_module()
class DecoupledRoIKLLoss(nn.Module):
    """Temperature KL on RoI class scores, split into foreground and
    background RoIs (two-stage detectors)::

        KL(set) = T^2 * sum_{i in set} KL(q_i || p_i) / max(1, |set|)

    with ``p = softmax(z_s / T)``, ``q = softmax(z_t / T)`` over the
    ``num_classes + 1`` columns; background RoIs are ``label ==
    num_classes`` (the last column), not the official ``labels.max()``
    trick, which breaks on a batch without background RoIs.

    Args:
        obj_weight (float): beta_obj. Defaults to 2.
        bg_weight (float): beta_bg. Defaults to 2.
        temperature (float): T. Defaults to 1.
    """

    def __init__(self, obj_weight: float = 2.0, bg_weight: float = 2.0,
                 temperature: float = 1.0):
        super().__init__()
        self.obj_weight = obj_weight
        self.bg_weight = bg_weight
        self.temperature = temperature

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                labels: Tensor) -> Tuple[Tensor, Tensor]:
        """Args: (R, K + 1) logits of both models on the same RoIs and the
        (R,) targets of the sampling that produced those RoIs."""
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(f'student logits {tuple(student_logits.shape)} '
                             f'and teacher logits '
                             f'{tuple(teacher_logits.shape)} differ')
        kl = _kl_rows(student_logits, teacher_logits, self.temperature)
        bg = labels == student_logits.size(1) - 1
        t2 = self.temperature**2
        obj = t2 * (kl * ~bg).sum() / (~bg).sum().clamp(min=1)
        back = t2 * (kl * bg).sum() / bg.sum().clamp(min=1)
        return self.obj_weight * obj, self.bg_weight * back


@MODELS.register_module()
class DecoupledDenseKLLoss(nn.Module):
    """Binary KL on dense (sigmoid) class scores, split into positive and
    negative anchors: our design for one-stage heads (the spec's 2.4; the
    official one-stage path cannot run). Off by default in DeFeat.

    Per anchor ``a``: ``sum_c KL(Bernoulli(q_ac) || Bernoulli(p_ac))`` with
    ``p = sigmoid(z_s / T)``, ``q = sigmoid(z_t / T)``; positives are the
    anchors the student head's assigner gives a class, negatives those it
    gives background, ignored anchors (weight 0) are left out; each part is
    averaged over its anchors and multiplied by ``T^2``.

    Args:
        obj_weight (float): weight of the positive-anchor part.
            Defaults to 1.
        bg_weight (float): weight of the negative-anchor part.
            Defaults to 1.
        temperature (float): T. Defaults to 1.
    """

    def __init__(self, obj_weight: float = 1.0, bg_weight: float = 1.0,
                 temperature: float = 1.0):
        super().__init__()
        self.obj_weight = obj_weight
        self.bg_weight = bg_weight
        self.temperature = temperature

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                labels: Tensor, label_weights: Tensor
                ) -> Tuple[Tensor, Tensor]:
        """Args: (A, C) sigmoid logits of both heads on the same anchors,
        the (A,) assigned labels (C = background) and weights (0 =
        ignored)."""
        if student_logits.shape != teacher_logits.shape:
            raise ValueError(f'student logits {tuple(student_logits.shape)} '
                             f'and teacher logits '
                             f'{tuple(teacher_logits.shape)} differ')
        t = self.temperature
        zs = student_logits.float() / t
        zt = teacher_logits.float() / t
        q = torch.sigmoid(zt)
        kl = (q * (F.logsigmoid(zt) - F.logsigmoid(zs)) + (1 - q) *
              (F.logsigmoid(-zt) - F.logsigmoid(-zs))).sum(dim=1)
        valid = label_weights > 0
        num_classes = student_logits.size(1)
        pos = valid & (labels >= 0) & (labels < num_classes)
        neg = valid & (labels == num_classes)
        obj = t * t * (kl * pos).sum() / pos.sum().clamp(min=1)
        back = t * t * (kl * neg).sum() / neg.sum().clamp(min=1)
        return self.obj_weight * obj, self.bg_weight * back

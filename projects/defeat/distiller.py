# Copyright (c) EVLab contributors.
"""DeFeat: Distilling Object Detectors via Decoupled Features (CVPR 2021).

Paper: https://arxiv.org/abs/2103.14475 ; official code (mmdet v2 fork):
https://github.com/ggjy/DeFeat.pytorch . Spec: ``defeat.md``.

:class:`DeFeatDistiller` wraps any mmdet RetinaNet-style one-stage detector
or Faster R-CNN-style two-stage detector (``StandardRoIHead``) and trains it
with the student's own detection losses plus

- ``loss_defeat_neck_fg`` / ``_bg``: the decoupled FPN-feature loss
  (:class:`DecoupledFeatLoss`) through one 3x3 adapter per level;
- ``loss_defeat_roi_fg`` / ``_bg`` (two-stage): the decoupled RoI
  classification KL (:class:`DecoupledRoIKLLoss`) on the teacher's sampled
  RoIs with the teacher-side targets (the fix of the official bug, official
  issue #20);
- ``loss_defeat_dense_fg`` / ``_bg`` (one-stage, off by default): our binary
  KL on anchors (:class:`DecoupledDenseKLLoss`).
"""
import copy
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from torch import Tensor

from projects.common.distill import BaseDistiller, DistillError

from .losses import DecoupledDenseKLLoss, DecoupledFeatLoss, DecoupledRoIKLLoss
from .masks import gt_level_masks


def _adapter(in_channels: int, out_channels: int) -> nn.Conv2d:
    """The official adapter: 3x3 conv, no activation; weight N(0, 1) folded
    into (-2, 2) by ``fmod`` and scaled by 1e-4, default bias."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn_like(conv.weight).fmod(2) * 1e-4)
    return conv


@MODELS.register_module()
class DeFeatDistiller(BaseDistiller):
    """Distil a detector through decoupled features.

    Args:
        student (dict): the student detector (``_base_.model``).
        teacher (str | dict): the teacher detector config (path,
            ``mmdet::`` path, or model dict); same type and same
            preprocessing as the student.
        teacher_ckpt (str, optional): the teacher's weights.
        alpha_obj, alpha_bg (float): neck weights, 1:4 (COCO 4:16).
        beta_obj, beta_bg (float): RoI KL weights. Defaults to 2, 2.
        temperature (float): RoI KL temperature. Defaults to 1.
        neck_kd (bool): the decoupled neck term. Defaults to True.
        roi_kd (bool, optional): the RoI KL term; None = on for two-stage
            students. Defaults to None.
        roi_source (str): ``'teacher'`` (RoIs and targets from the
            teacher's proposals, official "SampleTEA") or ``'student'``.
        dense_head_kd (bool | dict): the one-stage anchor KL, a dict of
            :class:`DecoupledDenseKLLoss` arguments to enable it.
            Defaults to False.
        neck_levels (Sequence[int], optional): FPN levels to distil.
            Defaults to all.
        neck_strides (Sequence[int], optional): strides of the FPN levels;
            by default the student's prior generator's.
        finest_scale (float): box-to-level rule. Defaults to 56.
        legacy_plus_one (bool): box size ``x2 - x1 + 1``. Defaults to True.
        allow_random_teacher (bool): for smoke tests only.
        predict_with (str): ``'student'`` or ``'teacher'``.
    """

    def __init__(self,
                 student: dict,
                 teacher: Union[str, dict],
                 teacher_ckpt: Optional[str] = None,
                 alpha_obj: float = 4.0,
                 alpha_bg: float = 16.0,
                 beta_obj: float = 2.0,
                 beta_bg: float = 2.0,
                 temperature: float = 1.0,
                 neck_kd: bool = True,
                 roi_kd: Optional[bool] = None,
                 roi_source: str = 'teacher',
                 dense_head_kd: Union[bool, dict] = False,
                 neck_levels: Optional[Sequence[int]] = None,
                 neck_strides: Optional[Sequence[int]] = None,
                 finest_scale: float = 56.,
                 legacy_plus_one: bool = True,
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
        s, t = self.student, self.teacher
        self.two_stage = hasattr(s, 'roi_head') and hasattr(s, 'rpn_head')
        if self.two_stage != (hasattr(t, 'roi_head')
                              and hasattr(t, 'rpn_head')):
            raise DistillError(
                f'student ({type(s).__name__}) and teacher '
                f'({type(t).__name__}) must both be one-stage or both '
                f'two-stage detectors')
        if not self.two_stage and not hasattr(s, 'bbox_head'):
            raise DistillError(f'{type(s).__name__} is neither a one-stage '
                               f'(bbox_head) nor a two-stage detector')
        if roi_kd is None:
            roi_kd = self.two_stage
        if roi_kd and not self.two_stage:
            raise DistillError('roi_kd needs a two-stage student (RPN + RoI '
                               'head); for one-stage use dense_head_kd')
        if dense_head_kd and self.two_stage:
            raise DistillError('dense_head_kd is for one-stage students; '
                               'two-stage ones use roi_kd')
        if roi_source not in ('teacher', 'student'):
            raise DistillError(f'roi_source must be "teacher" or "student", '
                               f'got {roi_source!r}')
        self.neck_kd = neck_kd
        self.roi_kd = roi_kd
        self.roi_source = roi_source
        self.finest_scale = finest_scale
        self.legacy_plus_one = legacy_plus_one
        # multiplied into every KD term; DeFeatLossDecayHook lowers it
        self.kd_scale = 1.0

        num_outs = s.neck.num_outs
        self.neck_levels = list(range(num_outs)) if neck_levels is None \
            else list(neck_levels)
        if neck_strides is None:
            head = s.rpn_head if self.two_stage else s.bbox_head
            neck_strides = [st[0] if isinstance(st, (tuple, list)) else st
                            for st in head.prior_generator.strides]
        if len(neck_strides) != num_outs:
            raise DistillError(f'{len(neck_strides)} neck_strides for '
                               f'{num_outs} FPN levels')
        self.neck_strides = list(neck_strides)
        if neck_kd:
            self.neck_loss = DecoupledFeatLoss(alpha_obj, alpha_bg)
            self.neck_adapters = nn.ModuleList(
                _adapter(s.neck.out_channels, t.neck.out_channels)
                for _ in self.neck_levels)
        if roi_kd:
            self.roi_loss = DecoupledRoIKLLoss(beta_obj, beta_bg,
                                               temperature)
        self.dense_loss = None
        if dense_head_kd:
            kwargs = dense_head_kd if isinstance(dense_head_kd, dict) else {}
            self.dense_loss = DecoupledDenseKLLoss(**kwargs)

    # -- training -----------------------------------------------------------
    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        x = self.student.extract_feat(inputs)
        teacher_x = None
        if self.neck_kd or self.roi_kd or self.dense_loss is not None:
            with torch.no_grad():
                teacher_x = self.teacher.extract_feat(inputs)
        if self.two_stage:
            losses = self._two_stage_losses(x, teacher_x, data_samples)
        else:
            losses = self._one_stage_losses(x, teacher_x, data_samples)
        if self.neck_kd:
            fg, bg = self.neck_feature_loss(x, teacher_x, data_samples)
            losses['loss_defeat_neck_fg'] = fg * self.kd_scale
            losses['loss_defeat_neck_bg'] = bg * self.kd_scale
        return losses

    def neck_feature_loss(self, x: Sequence[Tensor],
                          teacher_x: Sequence[Tensor], data_samples: list):
        """(fg, bg) decoupled loss between adapted student and teacher FPN
        maps on the configured levels."""
        sizes = [tuple(x[i].shape[-2:]) for i in range(len(x))]
        masks = gt_level_masks(
            [ds.gt_instances.bboxes for ds in data_samples], sizes,
            self.neck_strides, self.finest_scale, self.legacy_plus_one)
        student_maps, teacher_maps, level_masks = [], [], []
        for adapter, level in zip(self.neck_adapters, self.neck_levels):
            if tuple(teacher_x[level].shape[-2:]) != sizes[level]:
                raise DistillError(
                    f'FPN level {level}: student map {sizes[level]} and '
                    f'teacher map {tuple(teacher_x[level].shape[-2:])} '
                    f'differ; both must have the same strides')
            student_maps.append(adapter(x[level]))
            teacher_maps.append(teacher_x[level])
            level_masks.append(masks[level].to(x[level].device))
        return self.neck_loss(student_maps, teacher_maps, level_masks)

    def _one_stage_losses(self, x, teacher_x, data_samples) -> dict:
        head = self.student.bbox_head
        outs = head(x)
        gts, gts_ignore, metas = unpack_gt_instances(data_samples)
        losses = head.loss_by_feat(*outs, gts, metas, gts_ignore)
        if self.dense_loss is not None:
            with torch.no_grad():
                teacher_cls = self.teacher.bbox_head(teacher_x)[0]
            fg, bg = self.dense_kl(outs[0], teacher_cls, gts, metas,
                                   gts_ignore)
            losses['loss_defeat_dense_fg'] = fg * self.kd_scale
            losses['loss_defeat_dense_bg'] = bg * self.kd_scale
        return losses

    def dense_kl(self, student_cls: List[Tensor], teacher_cls: List[Tensor],
                 gts, metas, gts_ignore):
        """Anchor-wise KL split by the student head's own assignment."""
        head = self.student.bbox_head
        sizes = [c.shape[-2:] for c in student_cls]
        anchors, valid = head.get_anchors(sizes, metas,
                                          device=student_cls[0].device)
        targets = head.get_targets(anchors, valid, gts, metas,
                                   batch_gt_instances_ignore=gts_ignore)
        labels, label_weights = targets[0], targets[1]
        c = head.cls_out_channels

        def flat(maps):
            return torch.cat([
                m.permute(0, 2, 3, 1).reshape(m.size(0), -1, c) for m in maps
            ], dim=1).reshape(-1, c)

        for sc, tc in zip(student_cls, teacher_cls):
            if sc.shape != tc.shape:
                raise DistillError(
                    f'student class map {tuple(sc.shape)} and teacher class '
                    f'map {tuple(tc.shape)} differ: dense_head_kd needs the '
                    f'same anchors and classes on both heads')
        return self.dense_loss(
            flat(student_cls), flat(teacher_cls),
            torch.cat(labels, dim=1).reshape(-1),
            torch.cat(label_weights, dim=1).reshape(-1))

    def _two_stage_losses(self, x, teacher_x, data_samples) -> dict:
        # TwoStageDetector.loss, with the RoI head's steps spelled out so
        # that its sampling results and class scores can be reused
        s = self.student
        losses = {}
        proposal_cfg = s.train_cfg.get('rpn_proposal', s.test_cfg.rpn)
        rpn_samples = copy.deepcopy(data_samples)
        for ds in rpn_samples:
            ds.gt_instances.labels = torch.zeros_like(ds.gt_instances.labels)
        rpn_losses, proposals = s.rpn_head.loss_and_predict(
            x, rpn_samples, proposal_cfg=proposal_cfg)
        for key in list(rpn_losses):
            if 'loss' in key and 'rpn' not in key:
                rpn_losses[f'rpn_{key}'] = rpn_losses.pop(key)
        losses.update(rpn_losses)

        roi_head = s.roi_head
        if not hasattr(roi_head, 'bbox_loss') or not hasattr(
                roi_head, 'bbox_assigner'):
            raise DistillError(f'{type(roi_head).__name__} is not supported: '
                               f'DeFeat needs a StandardRoIHead-like head')
        gts, gts_ignore, metas = unpack_gt_instances(data_samples)
        sampling = self._sample_rois(proposals, gts, gts_ignore, x)
        bbox_results = roi_head.bbox_loss(x, sampling)
        losses.update(bbox_results['loss_bbox'])
        if roi_head.with_mask:
            mask_results = roi_head.mask_loss(x, sampling,
                                              bbox_results['bbox_feats'], gts)
            losses.update(mask_results['loss_mask'])

        if self.roi_kd:
            fg, bg = self.roi_kl(x, teacher_x, metas, gts, gts_ignore,
                                 proposal_cfg, sampling,
                                 bbox_results['cls_score'])
            losses['loss_defeat_roi_fg'] = fg * self.kd_scale
            losses['loss_defeat_roi_bg'] = bg * self.kd_scale
        return losses

    def _sample_rois(self, proposals, gts, gts_ignore, feats) -> list:
        roi_head = self.student.roi_head
        results = []
        for i, props in enumerate(proposals):
            props.priors = props.pop('bboxes')
            assign = roi_head.bbox_assigner.assign(props, gts[i],
                                                   gts_ignore[i])
            results.append(
                roi_head.bbox_sampler.sample(
                    assign, props, gts[i],
                    feats=[lvl[i][None] for lvl in feats]))
        return results

    def roi_kl(self, x, teacher_x, metas, gts, gts_ignore, proposal_cfg,
               student_sampling, student_scores):
        """The decoupled RoI KL on one set of RoIs for both heads.

        With ``roi_source='teacher'`` the RoIs are the teacher RPN's
        proposals, assigned and sampled with the student's rcnn assigner and
        sampler, and the labels are the targets of *that* sampling (the
        official code took the student's labels: official issue #20).
        """
        s, t = self.student, self.teacher
        if self.roi_source == 'teacher':
            with torch.no_grad():
                outs = t.rpn_head(teacher_x)
                proposals = t.rpn_head.predict_by_feat(
                    *outs, batch_img_metas=metas, cfg=proposal_cfg,
                    rescale=False)
            sampling = self._sample_rois(proposals, gts, gts_ignore,
                                         teacher_x)
            rois = bbox2roi([r.priors for r in sampling])
            student_scores = s.roi_head._bbox_forward(x, rois)['cls_score']
        else:
            sampling = student_sampling
            rois = bbox2roi([r.priors for r in sampling])
        with torch.no_grad():
            teacher_scores = t.roi_head._bbox_forward(teacher_x,
                                                      rois)['cls_score']
        labels = self.roi_targets(sampling)
        return self.roi_loss(student_scores, teacher_scores, labels)

    def roi_targets(self, sampling_results: list) -> Tensor:
        """Class targets of the sampling results that made the RoIs."""
        s = self.student
        return s.roi_head.bbox_head.get_targets(
            sampling_results, s.train_cfg.rcnn, concat=True)[0]

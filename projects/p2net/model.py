# Copyright (c) EVLab contributors.
"""P2Net (Guo et al., ICCV 2019): a ResNet re-ID model with Dual
Part-aligned Blocks, its ClassBlock head and the optional batch-hard
triplet loss.

Paper: https://arxiv.org/abs/1910.10111 ; official code:
https://github.com/ggjy/P2Net.pytorch (read, not copied). Spec 2.1-2.3.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.evaluation import Accuracy
from mmpretrain.models import ClsHead, ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .dpb import DualPartAlignedBlock


@MODELS.register_module()
class BatchHardTripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al., 2017): for each anchor, the
    farthest positive and the nearest negative of the batch (Euclidean),
    ``mean(relu(d_ap - d_an + margin))``.

    Args:
        margin (float): The margin. Defaults to 0.3.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self, margin: float = 0.3, loss_weight: float = 1.0):
        super().__init__()
        self.margin = margin
        self.loss_weight = loss_weight

    def forward(self, feats: Tensor, labels: Tensor) -> Tensor:
        dist = torch.cdist(feats, feats).clamp(min=1e-12)  # (B, B)
        same = labels[:, None] == labels[None]
        if not (same.sum(1) > 1).any() or same.all():
            raise ValueError(
                'BatchHardTripletLoss needs several images of some id and '
                'more than one id per batch: use PKSampler')
        d_ap = dist.masked_fill(~same, float('-inf')).max(1).values
        d_an = dist.masked_fill(same, float('inf')).min(1).values
        return self.loss_weight * F.relu(d_ap - d_an + self.margin).mean()


@MODELS.register_module()
class P2NetClsHead(ClsHead):
    """The official "ClassBlock": Linear(in, 256) -> BN1d -> LeakyReLU(0.5)
    gives ``embed``; Linear(256, num_classes) gives the identity logits.

    Args:
        num_classes (int): Training identities (751 on Market-1501).
        in_channels (int): Channels of ``pool5``. Defaults to 2048.
        embed_channels (int): Defaults to 256.
        loss (dict): The identity loss. Defaults to softmax cross-entropy
            (the released recipe); ``dict(type='LabelSmoothLoss',
            label_smooth_val=0.1)`` is the label-smoothing option.
        triplet_loss (dict, optional): E.g. ``dict(type='BatchHardTripletLoss',
            margin=0.3)``, on ``pool5``; off in the released recipe. Defaults
            to None.
        topk (tuple[int]): Training accuracy top-k. Defaults to ``(1, )``.
        init_cfg (dict, optional): Defaults to None (the official init).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 2048,
                 embed_channels: int = 256,
                 loss: Optional[dict] = None,
                 triplet_loss: Optional[dict] = None,
                 topk: Tuple[int, ...] = (1, ),
                 init_cfg: Optional[dict] = None):
        loss = loss or dict(type='CrossEntropyLoss', loss_weight=1.0)
        super().__init__(loss=loss, topk=topk, init_cfg=init_cfg)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.embed_channels = embed_channels
        self.fc_embed = nn.Linear(in_channels, embed_channels)
        self.bn_embed = nn.BatchNorm1d(embed_channels)
        self.act = nn.LeakyReLU(0.5)
        self.fc_cls = nn.Linear(embed_channels, num_classes)
        self.triplet = MODELS.build(triplet_loss) if triplet_loss else None
        self._official_init()

    def _official_init(self) -> None:
        nn.init.kaiming_normal_(self.fc_embed.weight, a=0, mode='fan_out')
        nn.init.zeros_(self.fc_embed.bias)
        nn.init.normal_(self.bn_embed.weight, 1.0, 0.02)
        nn.init.zeros_(self.bn_embed.bias)
        nn.init.normal_(self.fc_cls.weight, std=0.001)
        nn.init.zeros_(self.fc_cls.bias)

    def init_weights(self) -> None:
        if self.init_cfg:
            super().init_weights()
        else:
            self._official_init()

    def pre_logits(self, feats: Tuple[Tensor]) -> Tensor:
        """``embed`` (B, 256) from ``pool5`` (the last of ``feats``)."""
        return self.act(self.bn_embed(self.fc_embed(feats[-1])))

    def forward(self, feats: Tuple[Tensor]) -> Tensor:
        return self.fc_cls(self.pre_logits(feats))

    def loss(self, feats: Tuple[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        if any('gt_label' not in ds for ds in data_samples):
            raise ValueError('P2NetClsHead.loss needs gt_label: train on a '
                             'dataset in mode=\'train\'')
        score = self(feats)
        target = torch.cat([ds.gt_label for ds in data_samples])
        if target.numel() and (target.min() < 0
                               or target.max() >= self.num_classes):
            raise ValueError(
                f'identity label {int(target.max())} is outside the head\'s '
                f'num_classes={self.num_classes}: set num_classes to the '
                f'dataset\'s number of training ids')
        losses = dict(loss=self.loss_module(score, target,
                                            avg_factor=score.size(0),
                                            **kwargs))
        if self.triplet is not None:
            losses['loss_triplet'] = self.triplet(feats[-1], target)
        if self.cal_acc:
            acc = Accuracy.calculate(score, target, topk=self.topk)
            losses.update({f'accuracy_top-{k}': a
                           for k, a in zip(self.topk, acc)})
        return losses


@MODELS.register_module()
class P2NetReID(ImageClassifier):
    """P2Net: a ResNet with Dual Part-aligned Blocks between its stages.

    The backbone runs stage by stage (``backbone.res_layers``); after each
    stage in ``dpb_stages`` a :class:`DualPartAlignedBlock` refines the
    map. The blocks live in ``self.dpbs`` (not in the backbone), so that
    ``paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})``
    is the official lr split (0.01 backbone, 0.1 blocks and head).
    ``dpb_stages=()`` is the ResNet baseline.

    Test features (spec 2.3): ``pool5`` (global average pool of the last
    stage) and ``embed`` (the head's), each the sum over the image and its
    horizontal flip (part maps flipped too) when ``test_cfg['flip']``,
    then L2-normalised; stored as ``pred_feats`` of each data sample.

    Args:
        backbone (dict): A ResNet (mmpretrain), e.g. depth 50 with
            ``strides=(1, 2, 2, 1)`` (last stride 1).
        head (dict): A :class:`P2NetClsHead`.
        dpb_cfg (dict, optional): Arguments of each block other than
            ``in_channels`` (``c1``, ``c2``, ``num_parts``, ``bg_mode``).
            Defaults to None (the block's defaults).
        dpb_stages (Sequence[int]): 0-based stages after which a block sits.
            Defaults to ``(2, )``: after layer3, the released model.
        use_latent (bool): Latent-part branch of the blocks. Defaults to
            True.
        use_human (bool): Human-part branch of the blocks (needs part maps
            in the data samples, ``gt_part_map``). Defaults to True.
        test_cfg (dict, optional): ``flip`` (bool). Defaults to
            ``dict(flip=True)``.
        data_preprocessor (dict, optional): Defaults to a
            ``ClsDataPreprocessor``.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 dpb_cfg: Optional[dict] = None,
                 dpb_stages: Sequence[int] = (2, ),
                 use_latent: bool = True,
                 use_human: bool = True,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(backbone=backbone, neck=None, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not hasattr(self.backbone, 'res_layers'):
            raise TypeError(
                f'P2NetReID needs a ResNet-style backbone with res_layers, '
                f'got {type(self.backbone).__name__}')
        num_stages = len(self.backbone.res_layers)
        bad = [s for s in dpb_stages if not 0 <= s < num_stages - 1]
        if bad:
            raise ValueError(
                f'dpb_stages {tuple(dpb_stages)}: a block sits after a stage '
                f'and before the next, so stages must lie in '
                f'[0, {num_stages - 1}), got {bad}')
        self.dpb_stages = tuple(sorted(set(dpb_stages)))
        self.use_latent = use_latent
        self.use_human = use_human and bool(self.dpb_stages)
        self.test_cfg = dict(dict(flip=True), **(test_cfg or {}))
        self.dpbs = nn.ModuleDict({
            str(s): DualPartAlignedBlock(
                self._stage_channels(s), use_latent=use_latent,
                use_human=use_human, **(dpb_cfg or {}))
            for s in self.dpb_stages
        })

    def _stage_channels(self, stage: int) -> int:
        layer = getattr(self.backbone, self.backbone.res_layers[stage])
        return layer[-1].out_channels

    # -- features -----------------------------------------------------------
    def _stem(self, x: Tensor) -> Tensor:
        bb = self.backbone
        if getattr(bb, 'deep_stem', False):
            x = bb.stem(x)
        else:
            x = bb.relu(bb.norm1(bb.conv1(x)))
        return bb.maxpool(x)

    def extract_feat(self, inputs: Tensor, stage: str = 'neck',
                     part_maps: Optional[Tensor] = None):
        """``(pool5, )`` for ``stage='neck'``, ``embed`` for
        ``'pre_logits'``, the last stage's map (in a tuple) for
        ``'backbone'``.

        Args:
            inputs (Tensor): (B, 3, H, W) images.
            stage (str): See above. Defaults to ``'neck'``.
            part_maps (Tensor, optional): (B, H, W) part labels at the input
                resolution; needed when the blocks use the human branch.
        """
        if stage not in ('backbone', 'neck', 'pre_logits'):
            raise ValueError(f'invalid stage {stage!r}')
        if self.use_human and part_maps is None:
            raise ValueError(
                'P2NetReID with use_human=True needs part maps: add '
                'LoadPartMap and PackP2NetInputs to the pipeline and set '
                'the dataset\'s parsing_root, or set use_human=False')
        x = self._stem(inputs)
        for i, name in enumerate(self.backbone.res_layers):
            x = getattr(self.backbone, name)(x)
            if str(i) in self.dpbs:
                x = self.dpbs[str(i)](x, part_maps)
        if stage == 'backbone':
            return (x, )
        pool5 = x.mean((2, 3))  # (B, C, H, W) -> (B, C)
        if stage == 'neck':
            return (pool5, )
        return self.head.pre_logits((pool5, ))

    def _part_maps(self, inputs: Tensor,
                   data_samples: Optional[List[DataSample]]
                   ) -> Optional[Tensor]:
        """(B, H, W) part maps of the batch, or None when unused."""
        if not self.use_human:
            return None
        if not data_samples or any('gt_part_map' not in ds
                                   for ds in data_samples):
            raise ValueError(
                'P2NetReID with use_human=True needs a gt_part_map in every '
                'data sample: add LoadPartMap before PackP2NetInputs and '
                'set the dataset\'s parsing_root')
        maps = torch.stack([ds.gt_part_map for ds in data_samples])
        if maps.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(
                f'part maps of {tuple(maps.shape[-2:])} for inputs of '
                f'{tuple(inputs.shape[-2:])}: resize image and map together '
                f'(Resize after LoadPartMap, keep_ratio=False)')
        return maps.to(inputs.device)

    def forward(self, inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            if self.use_human and data_samples is None:
                # logits of images alone (FLOPs counting, export): an
                # all-background map; the cost does not depend on labels
                maps = inputs.new_zeros(inputs.shape[:1] + inputs.shape[2:],
                                        dtype=torch.long)
            else:
                maps = self._part_maps(inputs, data_samples)
            return self.head(self.extract_feat(inputs, part_maps=maps))
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs: Tensor,
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        feats = self.extract_feat(
            inputs, part_maps=self._part_maps(inputs, data_samples))
        return self.head.loss(feats, data_samples)

    def features(self, inputs: Tensor,
                 part_maps: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``pool5`` and ``embed`` of one view, not normalised."""
        (pool5, ) = self.extract_feat(inputs, part_maps=part_maps)
        return dict(pool5=pool5, embed=self.head.pre_logits((pool5, )))

    def predict(self, inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None,
                **kwargs) -> List[DataSample]:
        maps = self._part_maps(inputs, data_samples)
        feats = self.features(inputs, maps)
        if self.test_cfg.get('flip', True):
            flipped = self.features(
                inputs.flip(-1), None if maps is None else maps.flip(-1))
            feats = {k: v + flipped[k] for k, v in feats.items()}
        feats = {k: F.normalize(v, dim=1) for k, v in feats.items()}
        if data_samples is None:
            data_samples = [DataSample() for _ in range(inputs.size(0))]
        for i, ds in enumerate(data_samples):
            ds.set_field({k: v[i] for k, v in feats.items()}, 'pred_feats',
                         field_type='data')
        return data_samples

# Copyright (c) EVLab contributors.
"""A search fitness with less noise than top-1: the mean log-likelihood
of the true class on the held-out split.

Top-1 on ``n`` held-out images moves in steps of ``100 / n`` and has a
binomial standard error of ``100 * sqrt(p (1 - p) / n)`` (about 1.8
points at p = 0.72, n = 600), so candidates a few tenths apart are not
ranked by it. The log-likelihood uses every image's confidence, not a
0/1 outcome per image. Host-agnostic: it reads the ``pred_score``
(class probabilities) and ``gt_label`` entries that classification
data samples carry.
"""
from typing import List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


@METRICS.register_module()
class LogLikelihood(BaseMetric):
    """``log_likelihood``: the mean over images of ``log p(true class)``
    (natural log; 0 is perfect, ``-log(C)`` is a uniform guess). Higher
    is better, so it can be an evolution search's ``score_key``.

    Args:
        eps (float): Floor on the probabilities, so a confident mistake
            costs ``log(eps)`` rather than ``-inf``. Defaults to 1e-8.
        collect_device, prefix: see :class:`mmengine.evaluator.BaseMetric`.
    """
    default_prefix: Optional[str] = None

    def __init__(self, eps: float = 1e-8, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < eps < 1:
            raise ValueError(f'LogLikelihood eps must lie in (0, 1), '
                             f'got {eps}')
        self.eps = eps

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for i, sample in enumerate(data_samples):
            for key in ('pred_score', 'gt_label'):
                if key not in sample:
                    raise KeyError(
                        f'LogLikelihood: data sample {i} has no {key!r} '
                        f'(it has {sorted(sample)}); it needs a '
                        f'classifier\'s class probabilities')
            score = torch.as_tensor(sample['pred_score']).float().cpu()
            label = int(torch.as_tensor(sample['gt_label']).reshape(-1)[0])
            if not 0 <= label < score.numel():
                raise ValueError(f'LogLikelihood: label {label} of data '
                                 f'sample {i} is outside its '
                                 f'{score.numel()} class scores')
            self.results.append(
                float(score[label].clamp_min(self.eps).log()))

    def compute_metrics(self, results: List[float]) -> dict:
        return dict(log_likelihood=sum(results) / len(results))

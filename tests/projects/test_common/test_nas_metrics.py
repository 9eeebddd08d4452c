# Copyright (c) EVLab contributors.
"""The log-likelihood search fitness: its value by hand, through
mmengine's Evaluator on mmpretrain data samples, and its errors."""
import math

import pytest
import torch
from mmengine.evaluator import Evaluator

from projects.common.nas import LogLikelihood


def _samples(scores, labels):
    return [dict(pred_score=torch.tensor(s), gt_label=torch.tensor([y]))
            for s, y in zip(scores, labels)]


def test_mean_log_probability_of_the_true_class():
    metric = LogLikelihood()
    metric.process(None, _samples([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]],
                                  [0, 1]))
    value = metric.compute_metrics(metric.results)['log_likelihood']
    assert value == pytest.approx((math.log(0.7) + math.log(0.25)) / 2,
                                  abs=1e-6)
    # a confident mistake costs log(eps), not -inf
    metric = LogLikelihood(eps=1e-4)
    metric.process(None, _samples([[1.0, 0.0]], [1]))
    assert metric.compute_metrics(metric.results)['log_likelihood'] == \
        pytest.approx(math.log(1e-4))


def test_through_the_evaluator_on_classifier_outputs():
    from mmpretrain.structures import DataSample
    samples = []
    for s, y in (([0.6, 0.4], 0), ([0.1, 0.9], 1), ([0.8, 0.2], 1)):
        samples.append(DataSample().set_pred_score(torch.tensor(s))
                       .set_gt_label(y))
    evaluator = Evaluator(dict(type='LogLikelihood'))
    evaluator.process(samples)
    metrics = evaluator.evaluate(3)
    assert metrics['log_likelihood'] == pytest.approx(
        (math.log(0.6) + math.log(0.9) + math.log(0.2)) / 3, abs=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='eps'):
        LogLikelihood(eps=0)
    metric = LogLikelihood()
    with pytest.raises(KeyError, match="'pred_score'"):
        metric.process(None, [dict(gt_label=torch.tensor([0]))])
    with pytest.raises(ValueError, match='label 3'):
        metric.process(None, _samples([[0.5, 0.5]], [3]))

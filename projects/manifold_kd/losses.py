# Copyright (c) EVLab contributors.
"""The losses of fine-grained manifold distillation.

Paper: "Learning Efficient Vision Transformers via Fine-Grained Manifold
Distillation" (Hao et al., NeurIPS 2022, https://arxiv.org/abs/2107.01378);
official code: huawei-noah/Efficient-Computing,
``Distillation/ManifoldKD`` (``losses.py``). Spec: ``manifold_kd.md``.

- :class:`ManifoldRelationLoss`: the three relation maps (intra-image,
  inter-image, random rows) between L2-normalised token features of
  student/teacher layer pairs, mean squared differences, averaged over the
  pairs, always in fp32;
- :class:`SoftTargetKDLoss`: ``T^2 KL(p_t || p_s)`` on logits (Hinton).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import Tensor

SkipTokens = Union[int, str]


def _as_tokens(x: Tensor) -> Tensor:
    """Token features as (B, N, C); NCHW maps are flattened."""
    if isinstance(x, (tuple, list)):
        x = x[0]
    if x.dim() == 4:  # (B, C, H, W) -> (B, H*W, C)
        return x.flatten(2).transpose(1, 2)
    if x.dim() != 3:
        raise ValueError(f'expected token features (B, N, C) or maps '
                         f'(B, C, H, W), got shape {tuple(x.shape)}')
    return x


def align_tokens(student: Tensor, teacher: Tensor,
                 student_skip: SkipTokens = 'auto',
                 teacher_skip: SkipTokens = 'auto') -> tuple:
    """Drop leading (class / distillation) tokens so that both sides have
    the same number of tokens.

    ``'auto'`` drops the surplus leading tokens of whichever model has more
    (the official rule: ``extra = N_s - N_t``, e.g. DeiT's class token
    against CaiT's patch-only self-attention blocks; 0 when both carry a
    class token, which then stays in both). An int drops that many.
    """
    ns, nt = student.shape[1], teacher.shape[1]
    if student_skip == 'auto' and teacher_skip == 'auto':
        student_skip, teacher_skip = max(ns - nt, 0), max(nt - ns, 0)
    elif student_skip == 'auto':
        student_skip = max(ns - (nt - teacher_skip), 0)
    elif teacher_skip == 'auto':
        teacher_skip = max(nt - (ns - student_skip), 0)
    student, teacher = student[:, student_skip:], teacher[:, teacher_skip:]
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(
            f'student tokens {tuple(student.shape[:2])} and teacher tokens '
            f'{tuple(teacher.shape[:2])} (B, N) differ after skipping '
            f'{student_skip} / {teacher_skip} leading tokens; the relation '
            f'maps need the same batch and patch grid on both sides')
    return student, teacher


class _RelationMSE(torch.autograd.Function):
    """``mean((S S^T - T T^T)^2)`` over a batch of maps, T without grad.

    The same value and gradient as ``(bmm(S, S^T) - bmm(T, T^T))**2``
    averaged with plain autograd, at lower cost: the difference map ``D``
    is written by one ``bmm`` and one in-place ``baddbmm`` (no separate
    maps, no subtraction pass), and since ``D`` is symmetric the gradient
    ``dL/dS = 2 (D + D^T) S / numel`` is the single product
    ``4 D S / numel`` where autograd would run two (``dM S`` and
    ``dM^T S``). ``D`` is the only map kept for backward.
    """

    @staticmethod
    def forward(ctx, s: Tensor, t: Tensor) -> Tensor:
        d = torch.bmm(s, s.transpose(1, 2))
        d.baddbmm_(t, t.transpose(1, 2), alpha=-1.0)
        ctx.save_for_backward(d, s)
        flat = d.reshape(-1)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    def backward(ctx, grad: Tensor):
        d, s = ctx.saved_tensors
        grad_s = None
        if ctx.needs_input_grad[0]:
            grad_s = torch.bmm(d, s).mul_(grad * (4.0 / d.numel()))
        return grad_s, None


def relation_mse(s: Tensor, t: Tensor) -> Tensor:
    """``mean((S S^T - T T^T)^2)`` for (G, n, C_s) / (G, n, C_t) features.

    The mean runs over every entry of the G x n x n maps: the official
    normalisation (not the paper's Frobenius sums); the weights are tuned
    for it. The teacher side gets no gradient through the fast path; if it
    requires one (a generic use of the loss), plain autograd is used.
    """
    if t.requires_grad:
        return (torch.bmm(s, s.transpose(1, 2)) -
                torch.bmm(t, t.transpose(1, 2))).pow(2).mean()
    return _RelationMSE.apply(s, t)


def intra_image_map(f: Tensor) -> Tensor:
    """Cross-patch cosine similarities in each image: (B, N, N)."""
    return torch.bmm(f, f.transpose(1, 2))


def inter_image_map(f: Tensor) -> Tensor:
    """Cross-image similarities at each patch position: (N, B, B)."""
    f = f.transpose(0, 1)  # (B, N, C) -> (N, B, C)
    return torch.bmm(f, f.transpose(1, 2))


def random_rows_map(f: Tensor, idx: Tensor) -> Tensor:
    """Similarities between the rows ``idx`` of all B*N tokens: (K, K)."""
    rows = f.reshape(-1, f.shape[-1])[idx]  # (B, N, C) -> (B*N, C) -> (K, C)
    return rows @ rows.t()


@MODELS.register_module()
class ManifoldRelationLoss(nn.Module):
    """Fine-grained manifold loss over student/teacher layer pairs.

    For each pair, with per-token L2-normalised features ``F`` (B, N, C):
    ``L_intra = mean((F_t F_t^T - F_s F_s^T)^2)`` over B x N x N,
    ``L_inter`` the same on the (N, B, B) per-position maps, and
    ``L_rand`` on the (K, K) map of K random rows of the B*N tokens (the
    same rows for both sides, redrawn per pair and call). Each weighted
    term is averaged over the pairs (not summed, as the official code) and
    multiplied by ``loss_weight``. Computed in fp32 with autocast off.

    Args:
        w_intra (float): weight of the intra-image (cross-patch) term,
            the paper's alpha. Defaults to 4.0.
        w_inter (float): weight of the inter-image (cross-sample) term,
            the paper's beta. Defaults to 0.1.
        w_rand (float): weight of the random-rows term, the paper's gamma.
            Defaults to 0.2.
        num_rand_rows (int): K, rows of the random term; all B*N rows when
            fewer. Defaults to 192.
        loss_weight (float): global multiplier (``mf_weight``).
            Defaults to 1.0.
        student_skip_tokens (int | str): leading student tokens to drop,
            or ``'auto'`` (see :func:`align_tokens`). Defaults to 'auto'.
        teacher_skip_tokens (int | str): the same for the teacher.
            Defaults to 'auto'.
    """

    TERMS = ('intra', 'inter', 'rand')

    def __init__(self,
                 w_intra: float = 4.0,
                 w_inter: float = 0.1,
                 w_rand: float = 0.2,
                 num_rand_rows: int = 192,
                 loss_weight: float = 1.0,
                 student_skip_tokens: SkipTokens = 'auto',
                 teacher_skip_tokens: SkipTokens = 'auto'):
        super().__init__()
        for name, v in (('student_skip_tokens', student_skip_tokens),
                        ('teacher_skip_tokens', teacher_skip_tokens)):
            if v != 'auto' and not (isinstance(v, int) and v >= 0):
                raise ValueError(f'{name} must be "auto" or an int >= 0, '
                                 f'got {v!r}')
        if num_rand_rows < 1:
            raise ValueError(f'num_rand_rows must be >= 1, got '
                             f'{num_rand_rows}')
        self.weights = dict(intra=w_intra, inter=w_inter, rand=w_rand)
        self.num_rand_rows = num_rand_rows
        self.loss_weight = loss_weight
        self.student_skip_tokens = student_skip_tokens
        self.teacher_skip_tokens = teacher_skip_tokens

    def sample_rows(self, num_rows: int, device: torch.device,
                    generator: Optional[torch.Generator] = None) -> Tensor:
        """K distinct row indices out of ``num_rows`` (all when fewer)."""
        idx = torch.randperm(
            num_rows, generator=generator,
            device=device if generator is None else generator.device)
        return idx[:self.num_rand_rows].to(device)

    def pair_terms(self, student: Tensor, teacher: Tensor,
                   rand_idx: Optional[Tensor] = None,
                   generator: Optional[torch.Generator] = None
                   ) -> Dict[str, Tensor]:
        """The three unweighted terms of one layer pair (fp32)."""
        student, teacher = align_tokens(
            _as_tokens(student), _as_tokens(teacher),
            self.student_skip_tokens, self.teacher_skip_tokens)
        with torch.autocast(device_type=student.device.type, enabled=False):
            fs = F.normalize(student.float(), dim=-1)  # eps 1e-12
            ft = F.normalize(teacher.float(), dim=-1)
            if rand_idx is None:
                rand_idx = self.sample_rows(fs.shape[0] * fs.shape[1],
                                            fs.device, generator)
            c_s, c_t = fs.shape[-1], ft.shape[-1]
            # the maps themselves are intra/inter_image_map and
            # random_rows_map; relation_mse fuses map, difference and mean
            return dict(
                intra=relation_mse(fs, ft),
                inter=relation_mse(fs.transpose(0, 1), ft.transpose(0, 1)),
                rand=relation_mse(
                    fs.reshape(-1, c_s)[rand_idx].unsqueeze(0),
                    ft.reshape(-1, c_t)[rand_idx].unsqueeze(0)))

    def forward(self, student_feats: Sequence[Tensor],
                teacher_feats: Sequence[Tensor],
                rand_indices: Optional[Sequence[Tensor]] = None,
                generator: Optional[torch.Generator] = None
                ) -> Dict[str, Tensor]:
        """Returns ``loss_mf_intra``, ``loss_mf_inter``, ``loss_mf_rand``.

        Args:
            student_feats: one (B, N_s, C_s) tensor per layer pair.
            teacher_feats: the teacher's (B, N_t, C_t), same order.
            rand_indices: optional fixed row indices per pair (tests);
                drawn from ``generator`` (or the global RNG) otherwise.
            generator: RNG for the random rows. Defaults to None.
        """
        if len(student_feats) != len(teacher_feats) or not student_feats:
            raise ValueError(f'{len(student_feats)} student and '
                             f'{len(teacher_feats)} teacher features: need '
                             f'one of each per layer pair')
        sums: Dict[str, List[Tensor]] = {k: [] for k in self.TERMS}
        for i, (s, t) in enumerate(zip(student_feats, teacher_feats)):
            idx = None if rand_indices is None else rand_indices[i]
            terms = self.pair_terms(s, t, idx, generator)
            for k in self.TERMS:
                sums[k].append(self.weights[k] * terms[k])
        # each weighted term averaged over the pairs (official code)
        return {
            f'loss_mf_{k}': self.loss_weight * torch.stack(v).mean()
            for k, v in sums.items()
        }


@MODELS.register_module()
class SoftTargetKDLoss(nn.Module):
    """Soft-target distillation ``T^2 KL(softmax(z_t/T) || softmax(z_s/T))``
    summed over classes and averaged over the batch (``batchmean``).

    Args:
        tau (float): temperature T. Defaults to 1.0.
        loss_weight (float): ``kd_weight``. Defaults to 1.0.
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}')
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor
                ) -> Tensor:
        with torch.autocast(device_type=student_logits.device.type,
                            enabled=False):
            log_ps = F.log_softmax(student_logits.float() / self.tau, dim=1)
            log_pt = F.log_softmax(teacher_logits.float() / self.tau, dim=1)
            kl = F.kl_div(log_ps, log_pt, reduction='batchmean',
                          log_target=True)
        return self.loss_weight * self.tau * self.tau * kl

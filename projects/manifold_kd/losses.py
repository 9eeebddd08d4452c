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
from torch.autograd.function import once_differentiable

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


NORM_EPS = 1e-12  # F.normalize's default


def _at_least_fp32(x: Tensor) -> Tensor:
    """fp16 / bf16 (AMP) features to fp32; fp32 and fp64 as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _diff_map(s: Tensor, t: Tensor) -> Tensor:
    """``D = S S^T - T T^T`` for (G, n, C) batches: one ``bmm`` and one
    in-place ``baddbmm`` (no separate maps, no subtraction pass)."""
    return torch.bmm(s, s.transpose(1, 2)).baddbmm_(
        t, t.transpose(1, 2), alpha=-1.0)


def _mean_square(d: Tensor) -> Tensor:
    flat = d.reshape(-1)
    return torch.dot(flat, flat) / flat.numel()


def _normalize(x: Tensor) -> tuple:
    """``F.normalize(x, dim=-1)`` with the factors its backward needs:
    returns ``(y, 1 / max(|x|, eps), |x| >= eps)``."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    rinv = norm.clamp_min(NORM_EPS).reciprocal_()
    return (x * rinv).contiguous(), rinv, norm >= NORM_EPS


class _RelationMSE(torch.autograd.Function):
    """``mean((S S^T - T T^T)^2)`` over a batch of maps, T without grad.

    The same value and gradient as ``(bmm(S, S^T) - bmm(T, T^T))**2``
    averaged with plain autograd, at lower cost: ``D`` comes from
    :func:`_diff_map`, and since ``D`` is symmetric the gradient
    ``dL/dS = 2 (D + D^T) S / numel`` is the single product
    ``4 D S / numel`` where autograd would run two (``dM S`` and
    ``dM^T S``). ``D`` is the only map kept for backward.
    """

    @staticmethod
    def forward(ctx, s: Tensor, t: Tensor) -> Tensor:
        d = _diff_map(s, t)
        ctx.save_for_backward(d, s)
        return _mean_square(d)

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


class _PairRelationLoss(torch.autograd.Function):
    """The three relation terms of one layer pair as one autograd node.

    Inputs: the student's raw tokens ``x`` (B, skip + N, C_s), of which the
    first ``skip`` are dropped, the teacher's aligned raw tokens (B, N, C_t)
    (no gradient) and the K random row indices. Outputs ``(intra, inter,
    rand)``, equal to :func:`relation_mse` on ``F.normalize``-d features
    (tested). One node instead of autograd's ~40: the per-token
    normalisation, the three maps (:func:`_diff_map`, symmetric ``D``, so
    each gradient is one product ``4 D S / numel``), the three gradients
    summed into one buffer and the normalisation's backward
    ``(g - y <g, y>) / |x|`` written straight into the gradient of ``x``
    (no slice, index or accumulation passes). Against one fused function
    per map it cut a DeiT-Ti / CaiT-S24 pair at batch 64 from 153 to 117
    ms (1 CPU thread): the maps' products already ran near the GEMM peak,
    the rest was memory-bound element-wise passes.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, skip: int, idx: Tensor):
        s, rinv, keep = _normalize(x[:, skip:])
        t = _normalize(t.to(s.dtype))[0]
        c_s, c_t = s.shape[-1], t.shape[-1]
        s_pos, t_pos = s.transpose(0, 1), t.transpose(0, 1)  # (N, B, C)
        maps = (_diff_map(s, t), _diff_map(s_pos, t_pos),
                _diff_map(s.reshape(-1, c_s)[idx].unsqueeze(0),
                          t.reshape(-1, c_t)[idx].unsqueeze(0)))
        ctx.skip = skip
        ctx.save_for_backward(s, rinv, keep, idx, *maps)
        return tuple(_mean_square(d) for d in maps)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_intra: Tensor, g_inter: Tensor, g_rand: Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        s, rinv, keep, idx, d_intra, d_inter, d_rand = ctx.saved_tensors
        c_s = s.shape[-1]
        # dL/dS of each term: 4 D S / numel (D symmetric), summed
        g = torch.bmm(d_intra, s).mul_(g_intra * (4.0 / d_intra.numel()))
        d_inter = d_inter * (g_inter * (4.0 / d_inter.numel()))
        g.add_(torch.bmm(d_inter, s.transpose(0, 1)).transpose(0, 1))
        rows = s.reshape(-1, c_s)[idx]
        d_rand = d_rand[0] * (g_rand * (4.0 / d_rand.numel()))
        g.view(-1, c_s).index_add_(0, idx, d_rand @ rows)
        # through the normalisation y = x / max(|x|, eps)
        proj = torch.linalg.vecdot(g, s, dim=-1).unsqueeze_(-1).mul_(keep)
        g.addcmul_(s, proj, value=-1.0)
        skip = ctx.skip
        grad_x = g.new_empty(g.shape[0], skip + g.shape[1], c_s)
        grad_x[:, :skip].zero_()
        torch.mul(g, rinv, out=grad_x[:, skip:])
        return grad_x, None, None, None


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
        x = _as_tokens(student)
        student, teacher = align_tokens(
            x, _as_tokens(teacher), self.student_skip_tokens,
            self.teacher_skip_tokens)
        with torch.autocast(device_type=student.device.type, enabled=False):
            if rand_idx is None:
                rand_idx = self.sample_rows(
                    student.shape[0] * student.shape[1], student.device,
                    generator)
            if not teacher.requires_grad:  # the distiller's frozen teacher
                terms = _PairRelationLoss.apply(
                    _at_least_fp32(x), _at_least_fp32(teacher),
                    x.shape[1] - student.shape[1], rand_idx)
                return dict(zip(self.TERMS, terms))
            # generic use, gradients to both sides: plain autograd
            fs = F.normalize(_at_least_fp32(student), dim=-1)
            ft = F.normalize(_at_least_fp32(teacher), dim=-1)
            c_s, c_t = fs.shape[-1], ft.shape[-1]
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

# Copyright (c) EVLab contributors.
"""The losses of fine-grained manifold distillation.

Paper: "Learning Efficient Vision Transformers via Fine-Grained Manifold
Distillation" (Hao et al., NeurIPS 2022, https://arxiv.org/abs/2107.01378);
official code: huawei-noah/Efficient-Computing,
``Distillation/ManifoldKD`` (``losses.py``). Spec: ``manifold_kd.md``.

- :class:`ManifoldRelationLoss`: the three relation maps (intra-image,
  inter-image, random rows) between L2-normalised token features of
  student/teacher layer pairs, mean squared differences, averaged over the
  pairs, in fp32 (fp64 inputs stay fp64) with autocast off;
- :class:`SoftTargetKDLoss`: ``T^2 KL(p_t || p_s)`` on logits (Hinton).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch import Tensor
from torch.autograd.function import once_differentiable

from ..common.distill import soft_target_kd

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


def _diff_map(s: Tensor, t: Tensor, out: Optional[Tensor] = None
              ) -> Tensor:
    """``D = S S^T - T T^T`` for (G, n, C) batches: one ``bmm`` and one
    in-place ``baddbmm`` (no separate maps, no subtraction pass)."""
    return torch.bmm(s, s.transpose(1, 2), out=out).baddbmm_(
        t, t.transpose(1, 2), alpha=-1.0)


def _mean_square(d: Tensor) -> Tensor:
    flat = d.reshape(-1)
    return torch.dot(flat, flat) / flat.numel()


def _normalize(x: Tensor, out: Tensor, rinv: Optional[Tensor] = None,
               keep: Optional[Tensor] = None) -> None:
    """``out = F.normalize(x, dim=-1)``; also writes the factors its
    backward needs, ``rinv = 1 / max(|x|, eps)`` and ``keep = |x| >= eps``
    (the clamp's gradient mask), when given."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    if keep is not None:
        torch.ge(norm, NORM_EPS, out=keep)
    factor = norm.clamp_min_(NORM_EPS).reciprocal_()
    if rinv is not None:
        rinv.copy_(factor)
    torch.mul(x, factor, out=out)


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


def _pairs_per_node(device_type: str) -> Optional[int]:
    """How many equal-shape pairs one loss node stacks: all of them on
    GPUs, where the loss is bound by kernel launches and the caching
    allocator keeps the stacked buffers; one on CPUs, where buffers beyond
    glibc's mmap threshold (32 MB) are returned to the OS and page-faulted
    in again every step (measured: stacking 8 DeiT-Ti / CaiT-S24 pairs at
    batch 64 made the CPU loss 20-30% slower)."""
    return 1 if device_type == 'cpu' else None


class _RelationTerms(torch.autograd.Function):
    """The three relation terms of P layer pairs of equal shapes as one
    autograd node (P = 8 for DeiT-Ti / CaiT-S24: every block has the same
    token grid and width).

    Inputs: ``skip``, the leading student tokens to drop; ``idx`` (P, K),
    the random rows of each pair; then the P student raw block outputs
    (B, skip + N, C_s) and the P aligned teacher outputs (B, N, C_t) (no
    gradient). Outputs ``(intra, inter, rand)``, each the mean over the P
    pairs of :func:`relation_mse` on ``F.normalize``-d features (equal map
    sizes, so the mean of all entries of the stacked maps; tested).

    What it saves against autograd on the separately built maps: the
    tokens are normalised straight into one stacked buffer; all intra maps
    are one ``bmm`` + one in-place ``baddbmm`` (:func:`_diff_map`), all
    random-row maps one more; ``D`` is symmetric, so each term's gradient
    is the single product ``4 D S / numel``; the three gradients are
    summed in one buffer, and the normalisation's backward
    ``(g - y <g, y>) / |x|`` is written straight into each block output's
    gradient (no slice, index or accumulation passes). On one CPU thread
    this cut a DeiT-Ti / CaiT-S24 pair at batch 64 from 153 ms (one fused
    function per map) to 117 ms; on a GPU, where the loss is bound by
    kernel launches, stacking the pairs cuts their number ~3x.
    """

    @staticmethod
    def forward(ctx, skip: int, idx: Tensor, *feats: Tensor):
        num = len(feats) // 2
        xs, ts = feats[:num], feats[num:]
        (b, n, c_s), c_t = xs[0][:, skip:].shape, ts[0].shape[-1]
        dtype, device = xs[0].dtype, xs[0].device
        s = torch.empty(num, b, n, c_s, dtype=dtype, device=device)
        t = torch.empty(num, b, n, c_t, dtype=dtype, device=device)
        rinv = torch.empty(num, b, n, 1, dtype=dtype, device=device)
        keep = torch.empty(num, b, n, 1, dtype=torch.bool, device=device)
        for i, (x, tt) in enumerate(zip(xs, ts)):
            _normalize(x[:, skip:], s[i], rinv[i], keep[i])
            _normalize(tt.to(dtype), t[i])
        # random rows: pair i's rows in the flattened (P*B*N, C) buffers
        rows = (idx + torch.arange(num, device=device).unsqueeze(1) *
                (b * n)).reshape(-1)
        d_inter = s.new_empty(num, n, b, b)
        for i in range(num):
            _diff_map(s[i].transpose(0, 1), t[i].transpose(0, 1),
                      out=d_inter[i])
        maps = (_diff_map(s.view(-1, n, c_s), t.view(-1, n, c_t)), d_inter,
                _diff_map(s.view(-1, c_s)[rows].view(num, -1, c_s),
                          t.view(-1, c_t)[rows].view(num, -1, c_t)))
        ctx.skip = skip
        ctx.save_for_backward(s, rinv, keep, rows, *maps)
        return tuple(_mean_square(d) for d in maps)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_intra: Tensor, g_inter: Tensor, g_rand: Tensor):
        s = ctx.saved_tensors[0]
        # backward may run inside the caller's autocast: keep it in fp32
        with torch.autocast(device_type=s.device.type, enabled=False):
            return _RelationTerms._backward(ctx, g_intra, g_inter, g_rand)

    @staticmethod
    def _backward(ctx, g_intra: Tensor, g_inter: Tensor, g_rand: Tensor):
        s, rinv, keep, rows, d_intra, d_inter, d_rand = ctx.saved_tensors
        num, b, n, c_s = s.shape
        # dL/dS of each term: 4 D S / numel (D symmetric), summed
        g = torch.bmm(d_intra, s.view(-1, n, c_s)).view_as(s)
        g.mul_(g_intra * (4.0 / d_intra.numel()))
        d_inter = d_inter * (g_inter * (4.0 / d_inter.numel()))
        for i in range(num):
            g[i].add_(torch.bmm(d_inter[i], s[i].transpose(0, 1))
                      .transpose(0, 1))
        d_rand = d_rand * (g_rand * (4.0 / d_rand.numel()))
        g.view(-1, c_s).index_add_(
            0, rows, torch.bmm(d_rand, s.view(-1, c_s)[rows].view(
                num, -1, c_s)).view(-1, c_s))
        # through the normalisation y = x / max(|x|, eps)
        proj = torch.linalg.vecdot(g, s, dim=-1).unsqueeze_(-1).mul_(keep)
        g.addcmul_(s, proj, value=-1.0)
        skip, grads = ctx.skip, []
        for i in range(num):
            if not ctx.needs_input_grad[2 + i]:
                grads.append(None)
                continue
            grad_x = g.new_empty(b, skip + n, c_s)
            grad_x[:, :skip].zero_()
            torch.mul(g[i], rinv[i], out=grad_x[:, skip:])
            grads.append(grad_x)
        return (None, None, *grads, *[None] * num)


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


def plain_relation_terms(fs: Tensor, ft: Tensor, idx: Tensor) -> tuple:
    """``(intra, inter, rand)`` of one pair of aligned (B, N, C) token
    features, the straightforward way: ``F.normalize``, the maps built
    separately, plain autograd (gradients to both sides). The generic path
    of :class:`ManifoldRelationLoss` and the benchmarks' baseline."""
    fs, ft = F.normalize(fs, dim=-1), F.normalize(ft, dim=-1)
    return ((intra_image_map(fs) - intra_image_map(ft)).pow(2).mean(),
            (inter_image_map(fs) - inter_image_map(ft)).pow(2).mean(),
            (random_rows_map(fs, idx) - random_rows_map(ft, idx)).pow(2)
            .mean())


@MODELS.register_module()
class ManifoldRelationLoss(nn.Module):
    """Fine-grained manifold loss over student/teacher layer pairs.

    For each pair, with per-token L2-normalised features ``F`` (B, N, C):
    ``L_intra = mean((F_t F_t^T - F_s F_s^T)^2)`` over B x N x N,
    ``L_inter`` the same on the (N, B, B) per-position maps, and
    ``L_rand`` on the (K, K) map of K random rows of the B*N tokens (the
    same rows for both sides, redrawn per pair and call). Each weighted
    term is averaged over the pairs (not summed, as the official code) and
    multiplied by ``loss_weight``. Computed in fp32 with autocast off
    (fp64 inputs stay fp64), backward included.

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

    def _align(self, student: Tensor, teacher: Tensor,
               rand_idx: Optional[Tensor],
               generator: Optional[torch.Generator]) -> tuple:
        """``(student tokens, aligned teacher tokens, skip, rows)`` of one
        pair: the student's block output stays whole (its first ``skip``
        tokens are dropped inside the loss node)."""
        x = _as_tokens(student)
        student, teacher = align_tokens(
            x, _as_tokens(teacher), self.student_skip_tokens,
            self.teacher_skip_tokens)
        num_rows = student.shape[0] * student.shape[1]
        if rand_idx is None:
            rand_idx = self.sample_rows(num_rows, student.device, generator)
        else:  # given rows: out-of-range ones would read another stacked pair
            rand_idx = rand_idx.to(student.device)
            if rand_idx.dim() != 1 or rand_idx.dtype != torch.long or (
                    rand_idx.numel() and not 0 <= int(rand_idx.min()) <=
                    int(rand_idx.max()) < num_rows):
                raise ValueError(
                    f'rand_indices must be 1-D int64 rows in [0, B*N = '
                    f'{num_rows}), got {rand_idx.dtype} of shape '
                    f'{tuple(rand_idx.shape)}')
        return (_at_least_fp32(x), _at_least_fp32(teacher),
                x.shape[1] - student.shape[1], rand_idx)

    @staticmethod
    def _mean_terms(pairs: Sequence[tuple]) -> tuple:
        """Each unweighted term averaged over pairs of equal shapes."""
        xs, ts, skips, idx = zip(*pairs)
        if not any(t.requires_grad for t in ts):  # the frozen teacher
            return _RelationTerms.apply(skips[0], torch.stack(idx), *xs,
                                        *ts)
        # generic use, gradients to both sides: plain autograd
        terms = [torch.stack(plain_relation_terms(x[:, skip:], t, rows))
                 for x, t, skip, rows in pairs]
        return tuple(torch.stack(terms).mean(0))

    def pair_terms(self, student: Tensor, teacher: Tensor,
                   rand_idx: Optional[Tensor] = None,
                   generator: Optional[torch.Generator] = None
                   ) -> Dict[str, Tensor]:
        """The three unweighted terms of one layer pair (fp32, or fp64)."""
        with torch.autocast(device_type=student.device.type, enabled=False):
            pair = self._align(student, teacher, rand_idx, generator)
            return dict(zip(self.TERMS, self._mean_terms([pair])))

    def forward(self, student_feats: Sequence[Tensor],
                teacher_feats: Sequence[Tensor],
                rand_indices: Optional[Sequence[Tensor]] = None,
                generator: Optional[torch.Generator] = None
                ) -> Dict[str, Tensor]:
        """Returns ``loss_mf_intra``, ``loss_mf_inter``, ``loss_mf_rand``.

        Pairs of equal shapes (all of them for ViT students and teachers)
        are computed together in one autograd node; the result is the
        same as pair by pair.

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
        device_type = student_feats[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            groups: Dict[tuple, List[tuple]] = {}
            for i, (s, t) in enumerate(zip(student_feats, teacher_feats)):
                pair = self._align(
                    s, t, None if rand_indices is None else rand_indices[i],
                    generator)
                x, t, skip, rows = pair
                key = (x.shape, x.dtype, x.device, t.shape, skip,
                       rows.numel())
                groups.setdefault(key, []).append(pair)
            sums = [0.] * len(self.TERMS)
            step = _pairs_per_node(device_type)
            for group in groups.values():
                for j in range(0, len(group), step or len(group)):
                    pairs = group[j:j + step] if step else group
                    for k, term in enumerate(self._mean_terms(pairs)):
                        sums[k] = sums[k] + len(pairs) * term
        # each weighted term averaged over the pairs (official code)
        return {
            f'loss_mf_{name}': self.loss_weight * self.weights[name] *
            total / len(student_feats)
            for name, total in zip(self.TERMS, sums)
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
        return self.loss_weight * soft_target_kd(student_logits,
                                                 teacher_logits, self.tau)

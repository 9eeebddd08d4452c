#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Float32 gradients of the ops inside mmseg's ``ISAHead`` against a
float64 evaluation, by memory layout and CPU kernel, with the ReLU kinks
that float32 rounding crosses (issue 13, docs/cpu_kernels.md).

An AVX-512 trial saw the float32 input gradients of mmseg's ``ISAHead``
and EVLab's ``ISSAHead`` (same weights, 16x16 map, down factor (3, 5))
differ by 0.064 (largest gradient 11.8) and suspected a oneDNN kernel that
computes a wrong gradient for the layout mmseg's head produces. This
script, torch only, checks that suspicion op by op and shows what happens
instead. Each row runs one module in float32 and in float64 (same weights,
inputs and upstream gradient), with oneDNN on and off, and prints the
largest error of the input and parameter gradients, the number of ReLU
inputs whose sign differs between the two runs (``flips``) and the
smallest |ReLU input| of the float64 run (``kink``):

- ``conv1x1+bias`` (mmseg's ``value_project``), ``conv1x1-bn-relu`` (the
  first conv of ``query_project`` / ``key_project``, mmcv's
  ``ConvModule``), ``bn`` (``BatchNorm2d`` in training mode), each on the
  long-range groups (n * P_h * P_w, C, Q_h, Q_w) and the short-range groups
  (n * Q_h * Q_w, C, P_h, P_w), with the input and the gradient arriving
  at the output each either NCHW-contiguous (``nchw``) or in the
  channels-last layout (``nhwc``) that the backward of
  ``x.flatten(2).permute(0, 2, 1).contiguous()`` produces (mmseg's value
  convs get exactly that: ``--audit``);
- ``block-mmseg`` / ``block-evlab``: one attention block with mmseg's
  layouts (q, v and the context made contiguous as (B, N, C), then
  ``matmul``) and with EVLab's (``bmm`` on transposed views);
- ``rpn-conv1x1``: the 1x1 convs of mmdet's ``RPNHead`` (32 -> 12
  channels, batch 2, two threads so that oneDNN runs them), whose outputs
  the loss permutes to (N, H, W, C), as in DeFeat's Faster R-CNN;
- ``head-mmseg`` / ``head-evlab``: the whole head (3x3 conv-BN-ReLU, pad,
  regroup, two blocks, crop, concat, 1x1 conv-BN-ReLU, classifier) with
  the loss ``out.sum()``, as in
  ``tests/projects/test_issa/test_isahead_parity.py``, on ``--seeds``
  inputs.

Verdict: ``ok`` when every error is within ``--rtol`` (1e-3) of the
largest float64 gradient of its tensor (float32 rounding gives up to ~4e-5
in the whole head, with train-mode BN over small groups); ``kink`` when
it is not but a ReLU input changed sign: float32 rounding (~1e-6) put a
pre-activation that float64 puts within ~1e-6 of zero on the other side,
so the float32 gradient is the exact gradient of the other linear piece,
which no kernel can avoid; ``WRONG`` when an error exceeds the bound
without a flip, i.e. a kernel computes a wrong gradient. The exit status
is 1 if any row is ``WRONG``. ``--onednn-verbose`` adds the oneDNN
primitives each row ran (e.g. ``convolution:jit_1x1:avx512_core``).
``ATEN_CPU_CAPABILITY`` caps ATen's own vectorised kernels only; oneDNN
has its own cap, ``ONEDNN_MAX_CPU_ISA``; ``--matrix`` reruns the script
under unset / each of the two::

    python tools/analysis_tools/onednn_grad_repro.py
    python tools/analysis_tools/onednn_grad_repro.py --matrix --only head
    python tools/analysis_tools/onednn_grad_repro.py --only conv \\
        --onednn-verbose
    python tools/analysis_tools/onednn_grad_repro.py --audit

``--audit`` prints the layouts that each ``convolution_backward`` and
``native_batch_norm_backward`` call receives in the two heads (see
:func:`backward_layouts`, which works on any model).
"""
import argparse
import copy
import ctypes
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

# torch.backends.mkldnn.flags() warns about a setting for Intel GPUs
warnings.filterwarnings('ignore', message='TF32 acceleration')
MATRIX = ('', 'ATEN_CPU_CAPABILITY=avx2', 'ONEDNN_MAX_CPU_ISA=AVX2')
KINK = 1e-7  # distance of the moved ReLU input from zero, float64


# ----------------------------------------------------------------- layouts
def layout(t: torch.Tensor) -> str:
    """``nchw``, ``nhwc``, ``both`` (ambiguous, e.g. a size-1 dim) or
    ``strided`` for a 4-d tensor."""
    if t.dim() != 4:
        return 'contiguous' if t.is_contiguous() else 'strided'
    nchw = t.is_contiguous()
    nhwc = t.is_contiguous(memory_format=torch.channels_last)
    if nchw and nhwc:
        return 'both'
    return 'nchw' if nchw else 'nhwc' if nhwc else 'strided'


def as_layout(t: torch.Tensor, name: str) -> torch.Tensor:
    """A copy of the 4-d ``t`` in the layout ``nchw`` or ``nhwc``."""
    fmt = torch.channels_last if name == 'nhwc' else torch.contiguous_format
    return t.contiguous(memory_format=fmt)


def to_tokens(y: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, N, C) contiguous, as mmseg's attention block
    does with q and v; its backward hands ``y`` an ``nhwc`` gradient."""
    return y.flatten(2).permute(0, 2, 1).contiguous()


class BackwardLayouts(TorchDispatchMode):
    """Records the layouts of the tensors that reach the conv and BN
    backward kernels (forward and backward run under the mode)."""

    OPS = ('convolution_backward', 'native_batch_norm_backward')

    def __init__(self) -> None:
        super().__init__()
        self.records: List[Dict] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.OPS:
            grad_out, inp = args[0], args[1]
            rec = dict(op=name, input=layout(inp),
                       grad_output=layout(grad_out),
                       input_shape=tuple(inp.shape))
            if name == 'convolution_backward':
                rec['kernel'] = tuple(args[2].shape[2:])
            self.records.append(rec)
        return func(*args, **(kwargs or {}))


def backward_layouts(model: Callable, inputs: Sequence,
                     loss: Callable = lambda out: out.sum()) -> List[Dict]:
    """Run ``loss(model(*inputs)).backward()`` and return one record per
    conv / BN backward call: op, input and grad_output layouts, input
    shape (and the kernel size of a conv). A conv whose ``grad_output`` is
    ``nhwc`` while its ``input`` is ``nchw`` is the layout that differs
    between mmseg's ISAHead and ours (docs/cpu_kernels.md)."""
    mode = BackwardLayouts()
    with mode:
        loss(model(*inputs)).backward()
    return mode.records


def mixed_conv_calls(records: List[Dict]) -> List[Dict]:
    """The conv backward calls whose grad_output and input layouts are
    definite and differ."""
    definite = ('nchw', 'nhwc')
    return [r for r in records if r['op'] == 'convolution_backward'
            and r['input'] in definite and r['grad_output'] in definite
            and r['input'] != r['grad_output']]


# ------------------------------------------------------------------ models
class ConvBNReLU(nn.Sequential):
    """mmcv's ``ConvModule`` with BN and ReLU: conv without bias, BN,
    in-place ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Block(nn.Module):
    """ISA's self-attention block on group tensors (B, C, h, w).

    ``style='mmseg'`` has the layouts of mmseg's ``SelfAttentionBlock``:
    q and v made contiguous as (B, N, C_k) / (B, N, C), ``matmul``, the
    context made contiguous as (B, C, N). ``style='evlab'`` has those of
    ``projects.issa.ISSABlock``: q, k, v stay (B, C, N) and ``bmm`` takes
    transposed views. Same function, same parameters.
    """

    def __init__(self, c: int, ck: int, style: str) -> None:
        super().__init__()
        self.ck, self.style = ck, style
        self.query = nn.Sequential(ConvBNReLU(c, ck), ConvBNReLU(ck, ck))
        self.key = nn.Sequential(ConvBNReLU(c, ck), ConvBNReLU(ck, ck))
        self.value = nn.Conv2d(c, c, 1)
        self.out = ConvBNReLU(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.style == 'mmseg':
            q = to_tokens(self.query(x))  # (B, N, C_k)
            k = self.key(x).flatten(2)  # (B, C_k, N)
            v = to_tokens(self.value(x))  # (B, N, C)
            sim = (self.ck**-0.5 * torch.matmul(q, k)).softmax(-1)
            # (B, N, C) -> (B, C, N)
            ctx = torch.matmul(sim, v).permute(0, 2, 1).contiguous()
        else:
            q = self.query(x).flatten(2) * self.ck**-0.5  # (B, C_k, N)
            k = self.key(x).flatten(2)
            sim = torch.bmm(q.transpose(1, 2), k).softmax(-1)
            ctx = torch.bmm(self.value(x).flatten(2), sim.transpose(1, 2))
        return self.out(ctx.reshape(b, c, h, w))


class Head(nn.Module):
    """The ISA decode head (mmseg's ``ISAHead`` computation), with the
    attention blocks of ``style``."""

    def __init__(self, cin: int, c: int, ck: int, classes: int,
                 down_factor: Tuple[int, int], style: str) -> None:
        super().__init__()
        self.down_factor = down_factor
        self.in_conv = ConvBNReLU(cin, c, 3)
        self.global_relation = Block(c, ck, style)
        self.local_relation = Block(c, ck, style)
        self.out_conv = ConvBNReLU(2 * c, c)
        self.cls = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        res = x
        n, c, h, w = x.shape
        ph, pw = self.down_factor
        qh, qw = math.ceil(h / ph), math.ceil(w / pw)
        top, left = (qh * ph - h) // 2, (qw * pw - w) // 2
        x = F.pad(x, (left, qw * pw - w - left, top, qh * ph - h - top))
        # (n, c, qh*ph, qw*pw) -> (n*ph*pw, c, qh, qw)
        x = x.view(n, c, qh, ph, qw, pw).permute(0, 3, 5, 1, 2, 4)
        x = self.global_relation(x.reshape(-1, c, qh, qw))
        # -> (n, qh, qw, c, ph, pw) -> (n*qh*qw, c, ph, pw)
        x = x.view(n, ph, pw, c, qh, qw).permute(0, 4, 5, 3, 1, 2)
        x = self.local_relation(x.reshape(-1, c, ph, pw))
        # -> (n, c, qh, ph, qw, pw) -> (n, c, qh*ph, qw*pw), cropped
        x = x.view(n, qh, qw, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
        x = x.reshape(n, c, qh * ph, qw * pw)[:, :, top:top + h,
                                               left:left + w]
        return self.cls(self.out_conv(torch.cat([x, res], dim=1)))


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random BN affines and statistics (identity at init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
    return model.train()


# ------------------------------------------------------------------- cases
class Case:
    """A module, an input and an upstream gradient, in float32; ``tokens``
    routes the gradient through :func:`to_tokens` (``nhwc`` gradient)."""

    def __init__(self, name: str, module: nn.Module, x: torch.Tensor,
                 grad: Optional[torch.Tensor], tokens: bool = False,
                 in_layout: str = 'nchw', threads: Optional[int] = None
                 ) -> None:
        self.name, self.module, self.x, self.grad = name, module, x, grad
        self.tokens, self.in_layout, self.threads = tokens, in_layout, threads


def group_shapes(args) -> Dict[str, Tuple[int, int, int, int]]:
    n, c = args.batch, args.channels
    h, w = args.size
    ph, pw = args.down_factor
    qh, qw = math.ceil(h / ph), math.ceil(w / pw)
    return dict(long=(n * ph * pw, c, qh, qw),
                short=(n * qh * qw, c, ph, pw))


def op_cases(name: str, make: Callable, shape: Sequence[int], cout: int,
             seed: int, threads: Optional[int] = None) -> List[Case]:
    """``make()`` on ``shape`` for each layout of input and gradient."""
    cases = []
    for in_layout in ('nchw', 'nhwc'):
        for tokens in (False, True):
            seed += 1
            torch.manual_seed(seed)
            m = randomise(make(), seed)
            x = as_layout(torch.randn(shape), in_layout)
            g = torch.randn(shape[0], cout, *shape[2:])
            if tokens:  # (B, N, C), the layout of to_tokens(out)
                g = g.flatten(2).transpose(1, 2).contiguous()
            cases.append(Case(name, m, x, g, tokens, in_layout, threads))
    return cases


def build_cases(args) -> List[Case]:
    c, ck = args.channels, args.key_channels
    cases, seed = [], 0
    for group, shape in group_shapes(args).items():
        cases += op_cases(f'conv1x1+bias {group}', lambda: nn.Conv2d(c, c, 1),
                          shape, c, seed)
        cases += op_cases(f'conv1x1-bn-relu {group}',
                          lambda: ConvBNReLU(c, ck), shape, ck, seed + 10)
        cases += op_cases(f'bn {group}', lambda: nn.BatchNorm2d(c), shape,
                          c, seed + 20)
        seed += 30
        for style in ('mmseg', 'evlab'):
            seed += 1
            torch.manual_seed(seed)
            cases.append(Case(f'block-{style} {group}',
                              randomise(Block(c, ck, style), seed),
                              torch.randn(shape), torch.randn(shape)))
    # mmdet's RPNHead: 1x1 convs 32 -> 12 whose outputs the loss permutes
    # to (N, H, W, C) (DeFeat's Faster R-CNN, toy sizes); at batch 2 a 1x1
    # conv runs through oneDNN only with more than one thread
    cases += op_cases('rpn-conv1x1 2 threads', lambda: nn.Conv2d(32, 12, 1),
                      (2, 32, 24, 32), 12, 90, threads=max(args.threads, 2))
    for seed in range(args.seeds):
        x = head_input(args, seed)
        for style in ('mmseg', 'evlab'):
            cases.append(Case(f'head-{style} x{seed}', make_head(args, style),
                              x, None))
    for sign in (1, -1):
        for style in ('mmseg', 'evlab'):
            head = on_kink(make_head(args, style), head_input(args, 0),
                           sign * KINK)
            cases.append(Case(f'head-{style} kink{sign * KINK:+.0e}', head,
                              head_input(args, 0), None))
    return cases


def head_input(args, seed: int) -> torch.Tensor:
    return torch.randn(args.batch, args.in_channels, *args.size,
                       generator=torch.Generator().manual_seed(seed))


def make_head(args, style: str) -> Head:
    torch.manual_seed(100)  # the same weights for both styles
    return randomise(Head(args.in_channels, args.channels,
                          args.key_channels, args.classes,
                          tuple(args.down_factor), style), 100)


def on_kink(head: Head, x: torch.Tensor, offset: float) -> Head:
    """``head`` with one bias of ``out_conv``'s BN moved so that one
    ReLU input (in float64) lies ``offset`` from zero: a gradient that
    float32 rounding may put on either linear piece."""
    h64 = copy.deepcopy(head).double()
    seen = []
    h64.out_conv[2].register_forward_pre_hook(
        lambda _, args: seen.append(args[0].detach().clone()))
    h64(x.double())
    # the channel that ``out.sum()`` weighs most, its input nearest zero
    ch = int(head.cls.weight.sum(0).abs().argmax())
    pre = seen[0][:, ch]  # (n, h, w)
    nearest = float(pre.flatten()[pre.abs().argmin()])
    bn = head.out_conv[1]
    with torch.no_grad():  # stored in float32, so ~1e-8 off ``offset``
        bn.bias[ch] = float(bn.bias[ch]) - nearest + offset
    return head


def kink_jump(args) -> float:
    """Largest change of the float64 input gradient of the head between
    the two sides of the kink (``on_kink`` with +KINK and -KINK)."""
    x = head_input(args, 0).double().requires_grad_()
    grads = []
    for sign in (1, -1):
        head = on_kink(make_head(args, 'mmseg'), head_input(args, 0),
                       sign * KINK).double()
        x.grad = None
        head(x).sum().backward()
        grads.append(x.grad.clone())
    return float((grads[0] - grads[1]).abs().max())


def gradients(case: Case, dtype: torch.dtype, mkldnn: bool
              ) -> Tuple[torch.Tensor, List[torch.Tensor], str,
                         List[torch.Tensor]]:
    """Output, [input grad, *param grads], the layout of the gradient
    that reached the module's output and the inputs of every ReLU, in
    ``dtype``."""
    m = copy.deepcopy(case.module).to(dtype)
    # a fresh leaf in the case's layout
    x = case.x.detach().to(dtype).clone(
        memory_format=torch.preserve_format).requires_grad_()
    seen, relu_inputs = [], []
    for mod in m.modules():
        if isinstance(mod, nn.ReLU):  # before the in-place ReLU runs
            mod.register_forward_pre_hook(
                lambda _, args: relu_inputs.append(args[0].detach().clone()))
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        out = m(x)
        out.register_hook(lambda g: seen.append(layout(g)))
        y = to_tokens(out) if case.tokens else out
        if case.grad is None:
            y.sum().backward()
        else:
            (y * case.grad.to(dtype)).sum().backward()
    grads = [x.grad] + [p.grad for p in m.parameters()]
    return out.detach(), grads, seen[0], relu_inputs


def compare(case: Case, mkldnn: bool) -> Dict:
    out32, g32, seen, pre32 = gradients(case, torch.float32, mkldnn)
    out64, g64, _, pre64 = gradients(case, torch.float64, mkldnn)
    # ReLU inputs on the other side of zero in float32, and how close
    # float64 puts the nearest one to the kink
    flips = sum(int(((a > 0) != (b > 0)).sum()) for a, b in zip(pre32, pre64))
    kink = min((float(b.abs().min()) for b in pre64), default=math.inf)

    def err(a, b):
        return float((a.double() - b).abs().max())

    def peak(b):
        return float(b.abs().max())

    params = [(err(a, b), peak(b)) for a, b in zip(g32[1:], g64[1:])]
    top = max(p for _, p in params)
    # each parameter's error against its largest gradient, floored at 1 %
    # of the largest of all: some are zero in exact arithmetic (the value
    # conv's bias, whose shift the output BN removes) and hold only noise
    rel = max(e / max(p, 1e-2 * top, 1e-30) for e, p in params)
    return dict(case=case.name, input=case.in_layout,
                grad='sum' if case.grad is None else seen, mkldnn=mkldnn,
                out_err=err(out32, out64), dx_err=err(g32[0], g64[0]),
                dx_max=peak(g64[0]), dparam_err=max(e for e, _ in params),
                dparam_max=top, param_rel=rel, flips=flips, kink=kink)


# --------------------------------------------------------- oneDNN verbose
def run_capturing_onednn(fn: Callable) -> Tuple[object, List[str], str]:
    """``fn()`` with oneDNN's verbose output on, captured from fd 1:
    the result, the distinct ``kind:implementation:prop`` of the executed
    primitives and the ISA line."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(
                    torch.backends.mkldnn.VERBOSE_ON):
                result = fn()
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors='replace')
    prims, isa = [], ''
    for line in text.splitlines():
        if 'isa:' in line and not isa:
            isa = line.split('isa:', 1)[1].strip()
        fields = line.split(',')
        if 'exec' in fields and 'verbose' in fields[0]:
            i = fields.index('exec')
            prim = ':'.join(fields[i + 2:i + 5])
            if prim not in prims:
                prims.append(prim)
    return result, prims, isa


# ------------------------------------------------------------------ report
def cpu_report() -> Dict:
    flags = set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    break
    except OSError:
        pass
    return dict(torch=torch.__version__,
                aten_capability=torch.backends.cpu.get_cpu_capability(),
                avx512f='avx512f' in flags, avx2='avx2' in flags,
                threads=torch.get_num_threads(),
                env={k: os.environ[k] for k in (
                    'ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA',
                    'DNNL_MAX_CPU_ISA') if k in os.environ})


def run_all(args) -> Dict:
    rows, isa = [], ''
    for case in build_cases(args):
        if args.only and not re.search(args.only, case.name):
            continue
        torch.set_num_threads(case.threads or args.threads)
        for mkldnn in (True, False):
            if args.onednn_verbose and mkldnn:
                row, prims, line = run_capturing_onednn(
                    lambda c=case: compare(c, True))
                row['onednn'] = prims
                isa = isa or line
            else:
                row = compare(case, mkldnn)
            off = (row['dx_err'] > args.rtol * row['dx_max']
                   or row['param_rel'] > args.rtol)
            row['verdict'] = 'kink' if row['flips'] else \
                'WRONG' if off else 'ok'
            rows.append(row)
    torch.set_num_threads(args.threads)
    jump = kink_jump(args) if any('kink' in r['case'] for r in rows) else None
    return dict(cpu=cpu_report(), onednn_isa=isa, rows=rows, jump=jump)


def print_report(result: Dict, rtol: float) -> None:
    cpu = result['cpu']
    print(f"torch {cpu['torch']}, ATen capability "
          f"{cpu['aten_capability']}, avx512f {cpu['avx512f']}, "
          f"threads {cpu['threads']}, env {cpu['env'] or '-'}"
          + (f", oneDNN isa: {result['onednn_isa']}"
             if result['onednn_isa'] else ''))
    head = (f"{'case':<24}{'in':<6}{'grad':<6}{'mkldnn':<7}"
            f"{'out err':>9}{'dx err':>9}{'max|dx|':>9}"
            f"{'dp err':>9}{'max|dp|':>9}{'flips':>6}{'kink':>9}  verdict")
    print(head)
    print('-' * len(head))
    for r in result['rows']:
        print(f"{r['case']:<24}{r['input']:<6}{r['grad']:<6}"
              f"{'on' if r['mkldnn'] else 'off':<7}{r['out_err']:9.1e}"
              f"{r['dx_err']:9.1e}{r['dx_max']:9.2g}{r['dparam_err']:9.1e}"
              f"{r['dparam_max']:9.2g}{r['flips']:6d}"
              f"{r['kink']:9.1e}  {r['verdict']}")
        if r.get('onednn'):
            print('    oneDNN: ' + ', '.join(r['onednn']))
    rows = result['rows']
    if result.get('jump') is not None:
        print(f'the float64 input gradient of the head jumps by '
              f"{result['jump']:.3g} between the two sides of the kink "
              f'(ReLU input +{KINK:g} vs -{KINK:g})')
    n = sum(r['verdict'] == 'kink' for r in rows)
    print(f'{n} of {len(rows)} rows: float32 put a ReLU input on the other '
          'side of zero (a rounding-side choice, not a kernel error)')
    n = sum(r['verdict'] == 'WRONG' for r in rows)
    print(f'{n} of {len(rows)} rows: off float64 by more than {rtol:g} x '
          'the largest gradient without a ReLU flip (a wrong kernel)')


def run_matrix(args) -> int:
    """Rerun this script under each environment of ``MATRIX``."""
    argv = [a for a in sys.argv[1:] if a != '--matrix']
    status = 0
    for spec in MATRIX:
        env = dict(os.environ)
        for key in ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA',
                    'DNNL_MAX_CPU_ISA'):
            env.pop(key, None)
        if spec:
            key, value = spec.split('=')
            env[key] = value
        print(f'\n=== {spec or "no capability caps"} ===', flush=True)
        res = subprocess.run([sys.executable, __file__, *argv], env=env)
        status = max(status, res.returncode)
    return status


def audit(args) -> None:
    torch.set_num_threads(args.threads)
    x = torch.randn(args.batch, args.in_channels, *args.size,
                    generator=torch.Generator().manual_seed(99))
    for style in ('mmseg', 'evlab'):
        torch.manual_seed(100)
        head = randomise(Head(args.in_channels, args.channels,
                              args.key_channels, args.classes,
                              tuple(args.down_factor), style), 100)
        records = backward_layouts(head, [x])
        print(f'head-{style}: {len(records)} conv/BN backward calls, '
              f'{len(mixed_conv_calls(records))} convs with an nhwc '
              'gradient on an nchw input')
        for r in records:
            print('   ', json.dumps(r))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--size', type=int, nargs=2, default=(16, 16),
                   help='feature map (h, w) entering the head')
    p.add_argument('--down-factor', type=int, nargs=2, default=(3, 5))
    p.add_argument('--in-channels', type=int, default=32)
    p.add_argument('--channels', type=int, default=16)
    p.add_argument('--key-channels', type=int, default=8)
    p.add_argument('--classes', type=int, default=5)
    p.add_argument('--seeds', type=int, default=12,
                   help='inputs of the head rows')
    p.add_argument('--threads', type=int, default=1,
                   help='intra-op threads (the ISSA tests use 1)')
    p.add_argument('--rtol', type=float, default=1e-3,
                   help='error bound, relative to the largest gradient')
    p.add_argument('--only', default='',
                   help='regular expression on the case names')
    p.add_argument('--onednn-verbose', action='store_true',
                   help='list the oneDNN primitives of each row')
    p.add_argument('--matrix', action='store_true',
                   help='rerun under unset / ATEN_CPU_CAPABILITY=avx2 / '
                   'ONEDNN_MAX_CPU_ISA=AVX2')
    p.add_argument('--audit', action='store_true',
                   help='print the layouts reaching the conv/BN backward')
    p.add_argument('--json', help='also write the rows to this file')
    return p.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.matrix:
        return run_matrix(args)
    if args.audit:
        audit(args)
        return 0
    result = run_all(args)
    print_report(result, args.rtol)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return int(any(r['verdict'] == 'WRONG' for r in result['rows']))


if __name__ == '__main__':
    sys.exit(main())

# Copyright (c) EVLab contributors.
"""The top-down patch search (spec 2.4, Algorithm 1) and its budget mode
(2.5), as an mmengine train loop: ``train_cfg=dict(type=
'PatchSlimSearchLoop', ...)`` through ``tools/train.py``.

Per block ``t`` from the second last down to the first (the last keeps
only the class token)::

    s = impact scores of block t's tokens on the calibration images
        (blocks after t with their chosen lists, blocks up to t dense)
    m_t = m_{t+1}; r = 0
    repeat:  m_t = m_{t+1} + the r best-scoring tokens not in m_{t+1}
             optional fine-tuning;  E = error on the error images
             r += r0
    until E <= epsilon or every token is kept

``E = mean |z_hat - z|^2 / mean |z|^2`` on the final class feature (after
the last norm), pruned against the frozen dense network [re-derivation].
Calibration and error images are two disjoint random subsets of the
training split, never val. The budget mode bisects epsilon on a log scale
(fine-tuning off) for the smallest epsilon whose keep lists meet a MACs
target, then, when fine-tuning is on, reruns at that epsilon with it and
bisects a few steps further down with it (fine-tuning lowers the errors,
so the same epsilon would keep fewer tokens than the budget affords),
keeping the fine-tuned run closest to the budget from below.

The state (finished runs; the current run's finished blocks, and its
weights when fine-tuning) is written after every block, so a killed
search restarted in the same work dir continues from the next block.
Outputs: ``keep_indices.json``, ``pruned.pth`` (the model with its keep
lists), ``search_log.json``.
"""
import copy
import json
import logging
import math
import os
import os.path as osp
import random
import time
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import LOOPS
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from ..common.errors import EVLabError
from ..common.loops import TrainedModelLoop
from ..common.nas.io import atomic_write_text
from .flops import model_macs
from .io import save_keep_indices
from .score import SCORE_MODES, rank_candidates, token_scores
from .vit import PatchSlimViT

STATE_FILE = 'search_state.json'
WEIGHTS_FILE = 'search_weights.pth'


@LOOPS.register_module()
class PatchSlimSearchLoop(TrainedModelLoop):
    """Patch Slimming's search of the tokens each block keeps.

    Args:
        runner (Runner): The runner.
        dataloader (dict): The training split with a test pipeline (the
            calibration and error images are drawn from it).
        dense_checkpoint (str, optional): The trained dense model (a file,
            or a work dir: its newest checkpoint). Defaults to None (the
            model's weights as built, e.g. ``load_from``).
        epsilon (float, optional): The error tolerance. Give this or
            ``budget``.
        budget (int, optional): A MACs target (the classifier included):
            bisect epsilon to meet it (spec 2.5).
        r0 (int): Tokens added per trial. Defaults to 8.
        num_calib (int): Calibration images (scores, fine-tuning).
            Defaults to 4096.
        num_error (int): Error images. Defaults to 2048.
        score_mode (str): See :mod:`.score`. Defaults to ``'mean_head'``.
        finetune_steps (int): Fine-tuning iterations per trial (0: pure
            greedy). Defaults to 0.
        finetune_scope (str): ``'above'`` (blocks t..L and the last norm)
            or ``'block'`` (block t only). Defaults to ``'above'``.
        finetune_lr (float): AdamW learning rate. Defaults to 1e-5.
        finetune_batch_size (int): Defaults to 128.
        kd_weight (float): Weight of the soft-KD term (T = 1) next to the
            feature MSE in fine-tuning. Defaults to 0.5.
        bisect_range (tuple): Epsilon range of the bisection. Defaults to
            ``(1e-4, 1.0)``.
        bisect_steps (int): Bisection steps. Defaults to 10.
        refine_steps (int): With fine-tuning on, bisection steps with
            fine-tuning below the epsilon found without it, since
            fine-tuning lets the same epsilon keep fewer tokens than the
            budget affords. Defaults to 3.
        seed (int, optional): Draws the image subsets and fine-tuning
            batches. Defaults to the run's seed.
    """

    def __init__(self, runner, dataloader,
                 dense_checkpoint: Optional[str] = None,
                 epsilon: Optional[float] = None,
                 budget: Optional[int] = None, r0: int = 8,
                 num_calib: int = 4096, num_error: int = 2048,
                 score_mode: str = 'mean_head', finetune_steps: int = 0,
                 finetune_scope: str = 'above', finetune_lr: float = 1e-5,
                 finetune_batch_size: int = 128, kd_weight: float = 0.5,
                 bisect_range: Sequence[float] = (1e-4, 1.0),
                 bisect_steps: int = 10, refine_steps: int = 3,
                 seed: Optional[int] = None) -> None:
        super().__init__(runner, dataloader)
        if (epsilon is None) == (budget is None):
            raise EVLabError('PatchSlimSearchLoop: give epsilon (a '
                             'tolerance) or budget (a MACs target), one of '
                             'them')
        if score_mode not in SCORE_MODES:
            raise EVLabError(f'score_mode must be one of {SCORE_MODES}, '
                             f'got {score_mode!r}')
        if finetune_scope not in ('above', 'block'):
            raise EVLabError(f"finetune_scope must be 'above' or 'block', "
                             f'got {finetune_scope!r}')
        if r0 < 1:
            raise EVLabError(f'r0 must be at least 1, got {r0}')
        self.dense_checkpoint = dense_checkpoint
        self.epsilon, self.budget = epsilon, budget
        self.r0, self.score_mode = r0, score_mode
        self.num_calib, self.num_error = num_calib, num_error
        self.finetune_steps = finetune_steps
        self.finetune_scope, self.finetune_lr = finetune_scope, finetune_lr
        self.finetune_batch_size = finetune_batch_size
        self.kd_weight = kd_weight
        self.bisect_range = tuple(float(v) for v in bisect_range)
        self.bisect_steps = bisect_steps
        self.refine_steps = refine_steps
        self.seed = seed

    # ---- set-up -----------------------------------------------------------

    def _backbone(self) -> PatchSlimViT:
        backbone = getattr(self.model, 'backbone', None)
        if not isinstance(backbone, PatchSlimViT):
            raise EVLabError(f'PatchSlimSearchLoop needs a model whose '
                             f'backbone is a PatchSlimViT, got '
                             f'{type(backbone).__name__}')
        return backbone

    def _subsets(self, seed: int) -> Tuple[List[int], List[int]]:
        n = len(self.dataloader.dataset)
        if self.num_calib + self.num_error > n:
            raise EVLabError(
                f'num_calib + num_error = {self.num_calib} + '
                f'{self.num_error} exceeds the {n} training images')
        order = list(range(n))
        random.Random(f'patch-slim-subsets-{seed}').shuffle(order)
        return (sorted(order[:self.num_calib]),
                sorted(order[self.num_calib:self.num_calib + self.num_error]))

    @torch.no_grad()
    def _embed(self, indices: List[int]) -> Tensor:
        """Tokens entering block 0 for these images, ``(n, N, C)``."""
        loader = DataLoader(Subset(self.dataloader.dataset, indices),
                            batch_size=self.dataloader.batch_size,
                            collate_fn=self.dataloader.collate_fn,
                            num_workers=0, shuffle=False)
        model, backbone = self.model, self._backbone()
        out = []
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            out.append(backbone.embed(data['inputs'])[0])
        return torch.cat(out)

    @torch.no_grad()
    def _prefix(self, tokens: Tensor, start: int) -> Tensor:
        """Blocks ``0..start-1``, dense, on tokens of block 0's input."""
        layers = self._backbone().layers
        out = []
        for chunk in tokens.split(256):
            for i in range(start):
                chunk = layers[i](chunk)
            out.append(chunk)
        return torch.cat(out)

    @torch.no_grad()
    def _features(self, x: Tensor, start: int, mask: Tensor) -> Tensor:
        backbone = self._backbone()
        return torch.cat([backbone.forward_blocks(chunk, start, mask)
                          for chunk in x.split(256)])

    # ---- one greedy run -----------------------------------------------------

    def _macs(self, mask: Tensor) -> int:
        """MACs of the model with these lists (:func:`.flops.model_macs`:
        the patch embedding, a CNN one too, and the classifier
        included)."""
        head = getattr(getattr(self.model.head, 'layers', None), 'head',
                       None)
        classes = head.out_features if head is not None else 0
        return model_macs(self._backbone(), classes,
                          tokens=mask.sum(1).tolist())['total']

    def _error(self, x_err: Tensor, start: int, mask: Tensor,
               z_dense: Tensor) -> float:
        z = self._features(x_err, start, mask)
        return float((z - z_dense).square().sum(1).mean() /
                     z_dense.square().sum(1).mean())

    def _scores(self, x_cal: Tensor, t: int, mask: Tensor) -> Tensor:
        backbone = self._backbone()
        total = torch.zeros(mask.shape[1], dtype=torch.float64)
        with torch.no_grad():
            for chunk in x_cal.split(128):
                record = dict(maps=[], inputs=[])
                backbone.forward_blocks(chunk, t, mask, record)
                maps = [None] * t + record['maps']
                inputs = [None] * t + record['inputs']
                s = token_scores(maps, inputs, mask, t, self.score_mode)
                total += s.double().sum(0).cpu()
        return total / len(x_cal)

    def _finetune(self, x_cal: Tensor, t: int, mask: Tensor,
                  z_cal: Tensor, logits_cal: Tensor, steps: int,
                  rng: torch.Generator) -> None:
        backbone, model = self._backbone(), self.model
        layers = backbone.layers
        if self.finetune_scope == 'block':
            params = list(layers[t].parameters())
        else:
            params = [p for i in range(t, len(layers))
                      for p in layers[i].parameters()]
            params += list(backbone.ln1.parameters())
        opt = torch.optim.AdamW(params, lr=self.finetune_lr,
                                weight_decay=0.0)
        was = model.training
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(x_cal), (self.finetune_batch_size, ),
                                generator=rng)
            feat = backbone.forward_blocks(x_cal[idx], t, mask)
            logits = model.head((feat, ))
            loss = F.mse_loss(feat, z_cal[idx])
            if self.kd_weight:
                loss = loss + self.kd_weight * F.kl_div(
                    F.log_softmax(logits, -1),
                    F.softmax(logits_cal[idx], -1), reduction='batchmean')
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.train(was)

    def _greedy(self, eps: float, finetune_steps: int, data: dict,
                current: Optional[dict], save) -> dict:
        """One top-down run at tolerance ``eps``; ``current`` continues a
        run saved after some blocks. Returns ``keep``, ``macs``, ``log``."""
        backbone = self._backbone()
        L, N = len(backbone.layers), backbone.num_tokens
        if current:
            mask = torch.tensor(current['mask'], dtype=torch.bool)
            log, first = current['log'], current['next']
        else:
            mask = torch.ones(L, N, dtype=torch.bool)
            mask[L - 1] = False
            mask[L - 1, 0] = True  # m_L = e_0
            log, first = [], L - 2
        for t in range(first, -1, -1):
            t0 = time.time()
            # per block, so that a resumed run draws what this one would
            rng = torch.Generator().manual_seed(data['seed'] * 1000 + t)
            mask[:t + 1] = True  # blocks up to t dense while t is chosen
            x_cal = self._prefix(data['cal'], t)
            x_err = self._prefix(data['err'], t)
            order = rank_candidates(self._scores(x_cal, t, mask), mask[t + 1])
            r = 0
            while True:
                trial = mask.clone()
                trial[t] = mask[t + 1]
                trial[t, order[:r]] = True
                if finetune_steps:
                    self._finetune(x_cal, t, trial, data['z_cal'],
                                   data['logits_cal'], finetune_steps, rng)
                err = self._error(x_err, t, trial, data['z_err'])
                if err <= eps or r >= len(order):
                    break
                r += self.r0
            mask = trial
            entry = dict(block=t, tokens=int(mask[t].sum()), error=err,
                         macs=self._macs(mask),
                         seconds=round(time.time() - t0, 3))
            log.append(entry)
            print_log(f'epsilon {eps:.3g}: block {t} keeps {entry["tokens"]}'
                      f'/{N} tokens, error {err:.4g}, '
                      f'{entry["macs"] / 1e6:.2f} M MACs '
                      f'({entry["seconds"]:.1f} s)', logger='current')
            save(dict(eps=eps, finetune_steps=finetune_steps,
                      mask=mask.int().tolist(), log=log, next=t - 1))
        keep = [row.nonzero().flatten().tolist() for row in mask]
        return dict(eps=eps, finetune_steps=finetune_steps, keep=keep,
                    macs=self._macs(mask), log=log)

    # ---- the loop -----------------------------------------------------------

    def run(self):
        runner = self.runner
        checkpoint = self.load_trained(self.dense_checkpoint, 'dense model')
        backbone, model = self._backbone(), self.model
        backbone.set_keep([list(range(backbone.num_tokens))] *
                          len(backbone.layers))
        model.eval()
        seed = runner.seed if self.seed is None else self.seed
        cal_idx, err_idx = self._subsets(seed)
        L, N = len(backbone.layers), backbone.num_tokens
        if self.budget is not None:
            # the cheapest lists: block 0 keeps the class token alone
            low = torch.zeros(L, N, dtype=torch.bool)
            low[:, 0] = True
            smallest = self._macs(low)
            if self.budget < smallest:
                raise EVLabError(
                    f'budget={self.budget:,} MACs is below what the class '
                    f'token alone costs ({smallest:,} MACs: every block '
                    f'keeping only the class token)')
        context = dict(
            epsilon=self.epsilon, budget=self.budget, r0=self.r0,
            num_calib=self.num_calib, num_error=self.num_error,
            score_mode=self.score_mode, finetune_steps=self.finetune_steps,
            finetune_scope=self.finetune_scope,
            finetune_lr=self.finetune_lr,
            finetune_batch_size=self.finetune_batch_size,
            kd_weight=self.kd_weight, bisect_range=list(self.bisect_range),
            bisect_steps=self.bisect_steps,
            refine_steps=self.refine_steps, seed=seed,
            dense=None if checkpoint is None else
            [checkpoint, osp.getsize(checkpoint)])
        state_path = osp.join(runner.work_dir, STATE_FILE)
        weights_path = osp.join(runner.work_dir, WEIGHTS_FILE)
        state = dict(context=context, runs=[], current=None)
        if osp.isfile(state_path):
            with open(state_path) as f:
                saved = json.load(f)
            ctx = json.loads(json.dumps(context))
            if saved.get('context') != ctx:
                differ = sorted(k for k in ctx
                                if saved.get('context', {}).get(k) != ctx[k])
                raise EVLabError(
                    f'{state_path}: cannot resume this search: it was run '
                    f'with other {", ".join(differ)}. Use another '
                    f'--work-dir, or delete the file to start over')
            state = saved
            done = sum(len(r['log']) for r in state['runs'])
            cur = state['current']
            print_log(f'resuming the patch search from {state_path}: '
                      f'{len(state["runs"])} finished run(s)'
                      + ('' if not cur else
                         f', the current one at block {cur["next"]}')
                      + f' ({done} blocks reused)', logger='current')
        # the dense reference: features and logits of the original weights
        t0 = time.time()
        data = dict(seed=seed, cal=self._embed(cal_idx),
                    err=self._embed(err_idx))
        full = torch.ones(L, N, dtype=torch.bool)
        with torch.no_grad():
            data['z_cal'] = self._features(data['cal'], 0, full)
            data['z_err'] = self._features(data['err'], 0, full)
            data['logits_cal'] = model.head((data['z_cal'], ))
        dense_state = copy.deepcopy(model.state_dict()) \
            if self.finetune_steps else None
        self._dense_state = dense_state
        print_log(f'patch search: {len(cal_idx)} calibration and '
                  f'{len(err_idx)} error images from the training split, '
                  f'{L} blocks x {N} tokens, dense '
                  f'{self._macs(full) / 1e6:.2f} M MACs '
                  f'({time.time() - t0:.1f} s)', logger='current')

        def run_at(eps: float, finetune_steps: int) -> dict:
            for r in state['runs']:
                if r['eps'] == eps and r['finetune_steps'] == finetune_steps:
                    return r
            cur = state['current']
            if cur is not None and (cur['eps'], cur['finetune_steps']) != (
                    eps, finetune_steps):
                cur = None
            if finetune_steps:
                if cur is not None and osp.isfile(weights_path):
                    model.load_state_dict(torch.load(
                        weights_path, map_location='cpu',
                        weights_only=True))
                else:
                    model.load_state_dict(dense_state)

            def save(current: dict) -> None:
                state['current'] = current
                if is_main_process():
                    if finetune_steps:
                        _atomic_save(model.state_dict(), weights_path)
                    atomic_write_text(state_path, json.dumps(state) + '\n')

            result = self._greedy(eps, finetune_steps, data, cur, save)
            if finetune_steps:  # this run's weights, to pick it later
                result['weights'] = f'search_weights_eps{eps:.6g}.pth'
                if is_main_process():
                    _atomic_save(model.state_dict(), osp.join(
                        runner.work_dir, result['weights']))
            state['runs'].append(result)
            state['current'] = None
            if is_main_process():
                atomic_write_text(state_path, json.dumps(state) + '\n')
            return result

        if self.budget is None:
            final = run_at(float(self.epsilon), self.finetune_steps)
        else:
            final = self._bisect(run_at)
        backbone.set_keep(final['keep'])
        if is_main_process():
            self._write(final, state)
        return runner.model

    def _bisect(self, run_at) -> dict:
        """Smallest epsilon (log scale) whose lists meet the budget, with
        fine-tuning off; then that epsilon with fine-tuning, if on."""
        lo, hi = (math.log10(v) for v in self.bisect_range)
        top = run_at(10 ** hi, 0)
        if top['macs'] > self.budget:
            raise EVLabError(
                f'budget={self.budget:,} MACs is not met even at epsilon '
                f'{10 ** hi:g} ({top["macs"]:,} MACs); raise '
                f'bisect_range[1]')
        best = top
        for _ in range(self.bisect_steps):
            mid = (lo + hi) / 2
            r = run_at(float(f'{10 ** mid:.6g}'), 0)
            print_log(f'bisection: epsilon {r["eps"]:.4g} gives '
                      f'{r["macs"] / 1e6:.2f} M MACs (budget '
                      f'{self.budget / 1e6:.2f} M)', logger='current')
            if r['macs'] <= self.budget:
                hi, best = mid, r
            else:
                lo = mid
        if not self.finetune_steps:
            return best
        tuned = run_at(best['eps'], self.finetune_steps)
        if tuned['macs'] > self.budget:
            # fine-tuning changed the errors, and the lists grew past the
            # budget: keep the lists that meet it, on the dense weights
            print_log(f'the rerun with fine-tuning at epsilon '
                      f'{best["eps"]:.4g} costs {tuned["macs"]:,} MACs, '
                      f'over the budget; keeping the lists without '
                      f'fine-tuning ({best["macs"]:,} MACs)',
                      logger='current', level=logging.WARNING)
            self.model.load_state_dict(self._dense_state)
            return best
        # fine-tuning lowers the errors, so the same epsilon can keep far
        # fewer tokens than the budget affords: bisect below it again,
        # with fine-tuning, for the run closest to the budget from below
        chosen = tuned
        lo, hi = math.log10(self.bisect_range[0]), math.log10(best['eps'])
        for _ in range(self.refine_steps):
            mid = (lo + hi) / 2
            r = run_at(float(f'{10 ** mid:.6g}'), self.finetune_steps)
            print_log(f'refinement with fine-tuning: epsilon '
                      f'{r["eps"]:.4g} gives {r["macs"] / 1e6:.2f} M MACs '
                      f'(budget {self.budget / 1e6:.2f} M)',
                      logger='current')
            if r['macs'] <= self.budget:
                hi = mid
                if r['macs'] > chosen['macs']:
                    chosen = r
            else:
                lo = mid
        self.model.load_state_dict(torch.load(
            osp.join(self.runner.work_dir, chosen['weights']),
            map_location='cpu', weights_only=True))
        return chosen

    def _write(self, final: dict, state: dict) -> None:
        work_dir = self.runner.work_dir
        backbone = self._backbone()
        L = len(backbone.layers)
        dense = self._macs(torch.ones(L, backbone.num_tokens,
                                      dtype=torch.bool))
        path = osp.join(work_dir, 'keep_indices.json')
        save_keep_indices(path, final['keep'], epsilon=final['eps'],
                          macs=final['macs'], dense_macs=dense,
                          budget=self.budget,
                          finetune_steps=final['finetune_steps'])
        atomic_write_text(osp.join(work_dir, 'search_log.json'),
                          json.dumps(dict(final=final['log'],
                                          runs=[dict(eps=r['eps'],
                                                     macs=r['macs'],
                                                     finetune_steps=r[
                                                         'finetune_steps'])
                                                for r in state['runs']]),
                                     indent=1) + '\n')
        ckpt = osp.join(work_dir, 'pruned.pth')
        _atomic_save(dict(state_dict=self.model.state_dict(),
                          meta=dict(keep_indices=final['keep'],
                                    epsilon=final['eps'])), ckpt)
        print_log(f'keep lists {[len(k) for k in final["keep"]]} '
                  f'({final["macs"] / 1e6:.2f} M MACs, '
                  f'{100 * (1 - final["macs"] / dense):.1f}% fewer than '
                  f'dense) written to {path}; the pruned model to {ckpt}',
                  logger='current')


def _atomic_save(obj, path: str) -> None:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{os.getpid()}.tmp')
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise

#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""How much the toy Patch Slimming model needs its tokens: val top-1 of
the trained dense model (no fine-tuning) with the searched keep lists,
random nested lists of the same counts, a uniform ratio, ToMe, and
random subsets of k tokens kept in every block (the last keeping the
class token), and the central KxK cells (``--centre``).

If a few random tokens score near the dense model, the class reaches
the class token whichever tokens are kept (on the toy models: a CNN
embedding whose receptive field covers the image, or the first block
reading every token as keys and values), and no token choice can beat
another on that task: the diagnosis of the toy evidence in
``projects/patch_slim/README.md``.

    python tools/misc/patch_slim_token_probe.py \\
        work_dirs/patch_slim_seeds/seed0 --k 33 16 4 1

The folder is a seed folder of ``tools/misc/patch_slim_toy_seeds.py``
(``dense/``, ``search/``, ``keep_random.json``, ``keep_uniform.json``);
the lists it lacks are skipped.
"""
import argparse
import json
import os.path as osp
import random
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('seed_dir', help='a seed folder of '
                        'patch_slim_toy_seeds.py')
    parser.add_argument('--k', type=int, nargs='+', default=[33, 16, 4, 1],
                        help='random tokens kept per block (class token '
                        'included)')
    parser.add_argument('--draws', type=int, default=2,
                        help='random subsets per k')
    parser.add_argument('--centre', type=int, nargs='*', default=[4],
                        help='also keep only the central KxK cells (and '
                        'the class token) in every block but the last')
    parser.add_argument('--tome-r', type=int, default=10)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args()

    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import projects.patch_slim  # noqa: F401
    from projects.common.checkpoint import safe_load
    from projects.common.errors import EVLabError
    torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    dense = osp.join(args.seed_dir, 'dense')
    ckpt = osp.join(dense, 'last_checkpoint')
    if not osp.isfile(ckpt):
        raise EVLabError(f'{dense}: no trained dense model (last_checkpoint)'
                         f'; run tools/misc/patch_slim_toy_seeds.py first')
    cfg = Config.fromfile(osp.join(dense, 'toy_vit_ps-train.py'))
    cfg.model.backbone.cnn.init_cfg = None
    cfg.val_dataloader.num_workers = 0
    loader = Runner.build_dataloader(cfg.val_dataloader)
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    with open(ckpt) as f:
        path = f.read().strip()
    model.load_state_dict(safe_load(path)['state_dict'])
    model.eval()
    bb = model.backbone
    full = torch.ones_like(bb.keep_mask)

    def top1(keep=None, tome_r=None) -> float:
        bb.set_keep(full if keep is None else keep)
        bb.set_tome(tome_r)
        right = total = 0
        with torch.no_grad():
            for data in loader:
                for out in model.val_step(data):
                    right += int(out.pred_label.item() ==
                                 out.gt_label.item())
                    total += 1
        bb.set_tome(None)
        return 100 * right / total

    rows = [('dense', bb.tokens_per_block, top1())]

    def lists(name):
        p = {'searched': osp.join(args.seed_dir, 'search',
                                  'keep_indices.json'),
             'random nested': osp.join(args.seed_dir, 'keep_random.json'),
             'uniform': osp.join(args.seed_dir, 'keep_uniform.json')}[name]
        if osp.isfile(p):
            with open(p) as f:
                return json.load(f)['keep_indices']
        return None
    for name in ('searched', 'random nested', 'uniform'):
        keep = lists(name)
        if keep is not None:
            acc = top1(keep)
            rows.append((name, bb.tokens_per_block, acc))
    bb.set_tome(args.tome_r)
    tome_tokens = bb.tome_tokens()
    rows.append((f'ToMe r={args.tome_r}', tome_tokens,
                 top1(tome_r=args.tome_r)))
    rng = random.Random(0)
    n, layers = bb.num_tokens, bb.num_layers
    side = int(round((n - 1) ** 0.5))
    for k in args.centre:
        if side * side != n - 1 or (side - k) % 2 or not 0 < k <= side:
            raise EVLabError(f'--centre {k}: cannot centre {k}x{k} cells on '
                             f'the {n - 1} patch tokens')
        lo = (side - k) // 2
        tokens = [0] + [1 + r * side + c for r in range(lo, lo + k)
                        for c in range(lo, lo + k)]
        rows.append((f'the central {k}x{k} cells', [len(tokens)] * (
            layers - 1) + [1], top1([tokens] * (layers - 1) + [[0]])))
    for k in args.k:
        for d in range(args.draws):
            tokens = sorted([0] + rng.sample(range(1, n), k - 1))
            keep = [tokens] * (layers - 1) + [[0]]
            rows.append((f'random {k} tokens #{d}', [k] * (layers - 1) + [1],
                         top1(keep)))
    split = osp.basename(cfg.val_dataloader.dataset.ann_file)
    print(f'| keep | tokens per block | top-1 on {split} (no fine-tuning) |')
    print('|---|---|---|')
    for name, tokens, acc in rows:
        print(f'| {name} | {tokens} | {acc:.2f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([dict(keep=a, tokens=b, top1=c) for a, b, c in rows],
                      f, indent=2)


if __name__ == '__main__':
    from projects.common.runtime import cli
    cli(main)()

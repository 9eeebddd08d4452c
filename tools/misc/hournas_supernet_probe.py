#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Does a HourNAS stage-1 supernet learn on toy data? A plain training
loop (no Runner hooks) over the toy stage-1 config, with one fixed path
or a uniform path per iteration, printing the mean training loss per
epoch: the check behind projects/hournas/README.md ("Toy data", 4).

    python tools/misc/hournas_supernet_probe.py --paths fixed
    python tools/misc/hournas_supernet_probe.py --paths uniform
    python tools/misc/hournas_supernet_probe.py --paths uniform \\
        --weight-sharing separate --epochs 20
    python tools/misc/hournas_supernet_probe.py --paths uniform \\
        --arch '{"stem_channels": 16, "stem_stride": 1, \\
                 "head_channels": 256, "stages": [[32, 2, 2], [48, 2, 2], \\
                 [80, 2, 2]]}'

SGD (nesterov, momentum 0.9) at a constant learning rate, one thread,
seeded; the fixed path is the first candidate everywhere.
"""
import argparse
import json
import os.path as osp
import random
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--paths', choices=['fixed', 'uniform'],
                        default='uniform')
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--arch', help='a toy arch dict as JSON')
    parser.add_argument('--candidates', nargs='+', help='candidate ops')
    parser.add_argument('--weight-sharing', choices=['separate', 'entangled'],
                        help="the supernet's (default: the config's)")
    parser.add_argument('--config', default=osp.join(
        ROOT, 'configs/hournas/toy_hournas_stage1-supernet.py'))
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmpretrain.registry import MODELS

    import projects.hournas  # noqa: F401
    from projects.common.nas import Mutator
    torch.set_num_threads(1)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(args.config)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=args.seed)
    torch.manual_seed(args.seed)
    model_cfg = cfg.model.copy()
    if args.arch:
        model_cfg.backbone.arch = json.loads(args.arch)
        model_cfg.head.in_channels = model_cfg.backbone.arch['head_channels']
    if args.candidates:
        model_cfg.backbone.candidates = args.candidates
    if args.weight_sharing:
        model_cfg.backbone.weight_sharing = args.weight_sharing
    model = MODELS.build(model_cfg)
    mutator = Mutator(model)
    first = {k: v[0] for k, v in mutator.search_space().items()}
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                          nesterov=True)
    rng = random.Random(args.seed)
    means = []
    for epoch in range(args.epochs):
        losses = []
        for batch in loader:
            if args.paths == 'fixed':
                mutator.set(first)
            else:
                mutator.sample(rng)
            data = model.data_preprocessor(batch, True)
            loss = model(**data, mode='loss')['loss']
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        means.append(sum(losses) / len(losses))
        print(f'{args.paths} paths, epoch {epoch + 1}: mean training loss '
              f'{means[-1]:.4f}', flush=True)
    return means


if __name__ == '__main__':
    main()

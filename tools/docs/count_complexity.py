#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Parameters and MACs of every model in the metafiles, counted on the
model that its config builds (the student, for a distiller).

    python tools/docs/count_complexity.py            # print the counts
    python tools/docs/count_complexity.py --check    # exit 1 on a mismatch
    python tools/docs/count_complexity.py --write    # update the metafiles

The convention (docs/model_zoo.md states it too): ``Parameters`` is every
parameter of the deployed model; ``MACs`` are the multiply-accumulates of
every convolution and matrix product, attention products included
(``projects.common.complexity.count_macs``: torch's ``FlopCounterMode``
total halved; norms, activations, softmax, pooling, interpolation and
element-wise ops are not counted), for one input of the metafile's
``Input`` shape, in the model's ``mode='tensor'`` forward (no
post-processing: no NMS, no upsampling of the segmentation logits, no
auxiliary head). Models are built and counted on the meta device (shapes
only, nothing computed), except two-stage detectors, whose RoI head runs
on CPU on 1000 fixed proposals (mmcv's RoIAlign has no meta kernel).
A full run takes about a minute (the two-stage detectors).
"""
import argparse
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import gen_model_zoo as zoo  # noqa: E402


def deployed_model_cfg(config_path: str) -> Tuple[dict, str]:
    """The model dict that a config deploys (a distiller's student) and
    the scope to build it in."""
    from mmengine.config import Config

    from projects.common.analysis import deployed_model_cfg as deployed
    model_cfg, scope, _ = deployed(Config.fromfile(config_path))
    return model_cfg, scope


def build_deployed(config_path: str, device: str = 'meta') -> nn.Module:
    """Build the deployed model of ``config_path`` on ``device`` (eval
    mode); see :func:`projects.common.analysis.build`."""
    from projects.common.analysis import build
    return build(*deployed_model_cfg(config_path), device)


def count(config_path: str, shape: Sequence[int],
          model: Optional[nn.Module] = None) -> Tuple[int, int]:
    """(parameters, MACs) of the deployed model of ``config_path`` for one
    input of ``shape`` (N, C, H, W); ``model``: that model, already built
    by :func:`build_deployed`."""
    from projects.common.analysis import (
        TensorForward,
        example_input,
        is_two_stage,
    )
    from projects.common.complexity import count_macs, count_params

    if model is None:
        model = build_deployed(config_path, 'meta')
    params = count_params(model)
    if is_two_stage(model):  # mmcv's RoIAlign has no meta kernel
        model = build_deployed(config_path, 'cpu')
    fwd = TensorForward(model)
    x = example_input(shape, next(model.parameters()).device)
    return params, count_macs(lambda: fwd(x))


def _replace_in_model_block(text: str, name: str, key: str,
                            value: int) -> str:
    """Set ``key: value`` inside the model entry ``- Name: name``."""
    start = re.search(rf'^  - Name: {re.escape(name)}\s*$', text, re.M)
    if start is None:
        raise KeyError(f'model {name!r} not found')
    nxt = re.search(r'^  - Name: ', text[start.end():], re.M)
    end = start.end() + nxt.start() if nxt else len(text)
    block = text[start.end():end]
    new, n = re.subn(rf'^(\s+{key}:) *\S+', rf'\g<1> {value}', block,
                     count=1, flags=re.M)
    if n != 1:
        raise KeyError(f'model {name!r} has no {key} line')
    return text[:start.end()] + new + text[end:]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='*',
                        help='model names (default: all)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--check', action='store_true',
                      help='exit 1 when a metafile disagrees')
    mode.add_argument('--write', action='store_true',
                      help='write the counts into the metafiles')
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    metas = zoo.load_metafiles(ROOT)
    bad = 0
    edits: Dict[str, str] = {}
    for project, meta in metas.items():
        path = osp.join(ROOT, 'projects', project, 'metafile.yml')
        for model in meta.get('Models') or []:
            if args.models and model['Name'] not in args.models:
                continue
            md = model['Metadata']
            params, macs = count(osp.join(ROOT, model['Config']),
                                 md['Input'])
            same = (params, macs) == (md.get('Parameters'), md.get('MACs'))
            print(f'{"ok  " if same else "DIFF"} {model["Name"]:48s} '
                  f'params {params:>11,d} (metafile '
                  f'{md.get("Parameters")})  MACs {macs:>16,d} (metafile '
                  f'{md.get("MACs")})', flush=True)
            bad += not same
            if args.write and not same:
                text = edits.get(path) or open(path).read()
                text = _replace_in_model_block(text, model['Name'],
                                               'Parameters', params)
                edits[path] = _replace_in_model_block(text, model['Name'],
                                                      'MACs', macs)
    for path, text in edits.items():
        with open(path, 'w') as f:
            f.write(text)
        print(f'wrote {osp.relpath(path, ROOT)}')
    return 1 if args.check and bad else 0


if __name__ == '__main__':
    sys.exit(main())

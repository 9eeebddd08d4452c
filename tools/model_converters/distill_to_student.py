#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Export the student of a distiller checkpoint (DeFeat, manifold KD, ...)
as a plain host-model checkpoint: ``student.*`` weights with the prefix
stripped, plus ``meta``; teacher, adapters and optimizer state dropped.

    python tools/model_converters/distill_to_student.py \\
        work_dirs/toy_retinanet_defeat/epoch_6.pth student.pth
    python tools/test.py configs/defeat/toy_retinanet_student.py student.pth

The source is read with EVLab's weights-only loader; the output is written
atomically and never over the source.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.checkpoint import safe_load  # noqa: E402
from projects.common.distill import student_checkpoint  # noqa: E402
from projects.common.errors import EVLabError  # noqa: E402


def convert(src: str, dst: str, prefix: str = 'student.') -> int:
    """Write the student of ``src`` to ``dst``; returns the tensor count."""
    if osp.abspath(src) == osp.abspath(dst):
        raise EVLabError(f'refusing to overwrite the source checkpoint '
                         f'{src!r}; choose another output path')
    ckpt = safe_load(src, map_location='cpu')
    try:
        out = student_checkpoint(ckpt, prefix)
    except EVLabError as e:
        raise EVLabError(f'{src}: {e}') from None
    out.setdefault('meta', {})
    out['meta'] = dict(out['meta'], exported_from=osp.abspath(src))
    folder = osp.dirname(osp.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix='.tmp')
    os.close(fd)
    try:
        torch.save(out, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return len(out['state_dict'])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='distiller checkpoint (from train.py)')
    parser.add_argument('dst', help='output student-only checkpoint')
    parser.add_argument('--prefix', default='student.',
                        help='state_dict prefix of the student')
    args = parser.parse_args()
    try:
        n = convert(args.src, args.dst, args.prefix)
    except EVLabError as e:
        sys.exit(f'error: {e}')
    print(f'{n} student tensors -> {args.dst}')


if __name__ == '__main__':
    main()

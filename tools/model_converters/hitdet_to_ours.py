#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Convert the released Hit-Detector ImageNet backbone (``fbhit_7747.pth``
for COCO, ``fbhit_773.pth`` for VOC; ``ggjy/HitDet.pytorch``) into an
EVLab checkpoint: ``backbone.*`` for ``mmpretrain.HitBackbone`` (what
``configs/hit_detector/hitdet_faster-rcnn_1x_coco.py`` loads) and, when
the file has a classifier, ``head.fc.*``.

    python tools/model_converters/hitdet_to_ours.py fbhit_7747.pth \\
        checkpoints/hitdet_backbone_in1k.pth
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.common.checkpoint import (  # noqa: E402
    load_foreign_state_dict,
    save_converted,
)
from projects.common.runtime import cli  # noqa: E402
from projects.hit_detector.convert import convert_official  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released backbone checkpoint')
    parser.add_argument('dst', help='output EVLab checkpoint')
    parser.add_argument('--trusted', action='store_true',
                        help='allow full unpickling of a trusted file')
    args = parser.parse_args()
    state = convert_official(load_foreign_state_dict(
        args.src, args.trusted, keys=('state_dict', 'model')))
    save_converted(state, args.dst, converted_from=args.src)


if __name__ == '__main__':
    cli(main)()

#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""Draw what a config's data pipeline gives the model, with its
annotations.

    python tools/analysis_tools/browse_dataset.py CONFIG \\
        --output-dir DIR [--phase train|val|test] [--num 8]
        [--cfg-options ...]

Each sample goes through the config's own dataset and pipeline (for
``train``: augmentation included, so what the model trains on) and is
drawn by the host's visualizer from the config: mmdet boxes, class names
and masks (``DetLocalVisualizer``), mmseg label maps (``SegLocalVisualizer``),
mmpretrain the class (``UniversalVisualizer``); re-ID samples (P2Net's
``Market1501``) the image beside its part map, with identity, camera and
split. One PNG per sample
(``DIR/<index>_<image name>.png``) and a contact sheet of them all
(``DIR/browse_<phase>.png``).
"""
import argparse
import math
import os
import os.path as osp
import sys
import time
from typing import List, Optional

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

from projects.common.analysis import AnalysisError, host_of  # noqa: E402
from projects.common.runtime import (  # noqa: E402
    check_datasets,
    cli,
    load_config,
)

PHASES = ('train', 'val', 'test')


def _rgb(inputs) -> np.ndarray:
    """(C, H, W) BGR tensor of a pipeline -> (H, W, 3) uint8 RGB."""
    img = inputs.permute(1, 2, 0).cpu().numpy()
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., ::-1].clip(0, 255).astype(
        np.uint8))


def build_visualizer(cfg, host: str, dataset):
    """The config's visualizer (a fresh instance), with the dataset's
    classes and palette."""
    from mmengine.registry import VISUALIZERS, DefaultScope

    vis_cfg = dict(cfg.get('visualizer') or {})
    vis_cfg.setdefault('type', {'mmdet': 'DetLocalVisualizer',
                                'mmseg': 'SegLocalVisualizer',
                                'mmpretrain': 'UniversalVisualizer'}[host])
    vis_cfg['name'] = f'browse_dataset_{time.time_ns()}'
    vis_cfg['vis_backends'] = None  # write our own files
    vis_cfg.pop('save_dir', None)
    with DefaultScope.overwrite_default_scope(host):
        visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    return visualizer


#: Part-map colours (background black), one per label
PART_COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75],
                         [0, 130, 200], [255, 225, 25], [145, 30, 180],
                         [70, 240, 240], [240, 50, 230]], np.uint8)


def draw_reid(img: np.ndarray, sample, scale: int = 2) -> np.ndarray:
    """A re-ID sample: the image, its part map blended over it (when the
    pipeline carries one) and a caption with the identity, camera, the
    split and, for training, the label."""
    from PIL import Image, ImageDraw

    panels = [img]
    part = sample.get('gt_part_map')
    if part is not None:
        part = part.cpu().numpy().astype(np.int64)
        part = np.where(part == 255, 0, part) % len(PART_COLOURS)
        colour = PART_COLOURS[part]
        panels.append(np.where(part[..., None] > 0,
                               (0.35 * img + 0.65 * colour).astype(np.uint8),
                               (0.35 * img).astype(np.uint8)))
    strip = np.concatenate(panels, axis=1)
    h, w = strip.shape[:2]
    pic = Image.fromarray(strip).resize((w * scale, h * scale),
                                        Image.NEAREST)
    canvas = Image.new('RGB', (max(pic.width, 120), pic.height + 28),
                       'white')
    canvas.paste(pic, (0, 28))
    pid, cam = sample.get('pid'), sample.get('camid')
    split = 'query' if sample.get('is_query') else (
        'train' if 'gt_label' in sample else 'gallery')
    text = f'id {pid} cam {cam + 1 if cam is not None else "?"}'
    if 'gt_label' in sample:
        text += f' label {int(sample.gt_label[0])}'
    pen = ImageDraw.Draw(canvas)
    pen.text((2, 1), text, fill='black')
    pen.text((2, 14), split + (' (flipped)' if sample.get('flip') else ''),
             fill='black')
    return np.asarray(canvas)


def draw(visualizer, host: str, item: dict) -> np.ndarray:
    """The picture of one pipeline output ``item``."""
    img = _rgb(item['inputs'])
    sample = item['data_samples']
    if 'pid' in sample:  # a re-ID sample
        return draw_reid(img, sample)
    if host == 'mmdet':
        from mmdet.structures.bbox import BaseBoxes
        sample = sample.numpy()
        gt = sample.gt_instances
        if isinstance(gt.get('bboxes', None), BaseBoxes):
            gt.bboxes = gt.bboxes.tensor
        sample.gt_instances = gt
        visualizer.add_datasample('sample', img, sample, draw_pred=False,
                                  show=False)
        return visualizer.get_image()
    if host == 'mmseg':
        seg = sample.gt_sem_seg.data  # (1, h, w)
        if tuple(seg.shape[-2:]) != img.shape[:2]:
            # a test pipeline loads the map at the original size, after
            # resizing the image (metrics are at the original size)
            import torch.nn.functional as F
            from mmengine.structures import PixelData
            sample.gt_sem_seg = PixelData(data=F.interpolate(
                seg[None].float(), size=img.shape[:2],
                mode='nearest')[0].to(seg.dtype))
        visualizer.add_datasample('sample', img, sample, draw_pred=False,
                                  show=False)
        return visualizer.get_image()
    return visualizer.visualize_cls(img, sample, draw_pred=False,
                                    draw_gt=True, show=False,
                                    rescale_factor=max(1.0, 224 / max(
                                        img.shape[:2])))


def contact_sheet(images: List[np.ndarray], names: List[str],
                  out: str) -> str:
    """All pictures in a grid with their names, as one PNG."""
    from PIL import Image, ImageDraw

    cols = min(4, len(images))
    rows = math.ceil(len(images) / cols)
    cw = max(i.shape[1] for i in images)
    ch = max(i.shape[0] for i in images) + 14
    sheet = Image.new('RGB', (cols * cw + (cols - 1) * 4,
                              rows * ch + (rows - 1) * 4), 'white')
    pen = ImageDraw.Draw(sheet)
    for k, (img, name) in enumerate(zip(images, names)):
        x, y = (k % cols) * (cw + 4), (k // cols) * (ch + 4)
        pen.text((x + 2, y), name[:48], fill='black')
        sheet.paste(Image.fromarray(img), (x, y + 14))
    sheet.save(out)
    return out


def browse(cfg, output_dir: str, phase: str = 'train', num: int = 8,
           config_path: str = '') -> List[str]:
    """Draw the first ``num`` samples of the ``phase`` dataset of ``cfg``
    into ``output_dir``; returns the files written (sheet last)."""
    from mmengine.registry import DATASETS, DefaultScope

    host = host_of(cfg.get('default_scope'))
    loader = cfg.get(f'{phase}_dataloader')
    if not loader:
        raise AnalysisError(f'config {config_path!r} has no '
                            f'{phase}_dataloader')
    check_datasets(cfg, [f'{phase}_dataloader'])
    with DefaultScope.overwrite_default_scope(host):
        # importing registers the host's transforms
        __import__(f'{host}.datasets')
        dataset = DATASETS.build(loader['dataset'])
    if len(dataset) == 0:
        raise AnalysisError(f'the {phase} dataset of {config_path!r} is '
                            f'empty')
    visualizer = build_visualizer(cfg, host, dataset)
    os.makedirs(output_dir, exist_ok=True)
    files, images, names = [], [], []
    count = min(num, len(dataset))
    for i in range(count):
        item = dataset[i]
        img_path = item['data_samples'].get('img_path') or f'{i}'
        name = f'{i:03d}_{osp.splitext(osp.basename(str(img_path)))[0]}'
        picture = draw(visualizer, host, item)
        out = osp.join(output_dir, f'{name}.png')
        from PIL import Image
        Image.fromarray(picture).save(out)
        files.append(out)
        images.append(picture)
        names.append(name)
        print(f'[{i + 1}/{count}] {out}', flush=True)
    files.append(contact_sheet(images, names,
                               osp.join(output_dir, f'browse_{phase}.png')))
    return files


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--output-dir', required=True)
    parser.add_argument('--phase', choices=PHASES, default='train')
    parser.add_argument('--num', type=int, default=8,
                        help='how many samples (from the first)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error('--num must be at least 1')
    return args


@cli
def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    files = browse(cfg, args.output_dir, args.phase, args.num, args.config)
    print(f'contact sheet: {files[-1]}')


if __name__ == '__main__':
    main()

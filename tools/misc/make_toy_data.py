# Copyright (c) EVLab contributors.
"""Generate the small toy datasets that every EVLab method trains on.

The datasets use the real on-disk formats, so the real dataset classes and
pipelines of mmdet / mmpretrain / mmseg read them unchanged:

* ``toy_det``: COCO layout (``annotations/instances_{train,val}.json`` and
  ``{train,val}/*.jpg``), 800 train and 100 val images of 128x128, 5 shape
  classes among unlabelled clutter shapes, objects of 16 to 96 px, so
  that FPN levels P3, P4 and P5 of a RetinaNet receive objects.
* ``toy_cls``: ImageNet layout (``train/<class>/*.JPEG``, flat ``val/``
  and ``test/``, ``meta/{train,val,test}.txt`` with ``path label``
  lines), 10 shape classes, 2600 train, 400 val and 2000 test images of
  64x64 (v3 added the test split; train and val are v2's).
* ``toy_glimpse``: ``toy_cls``'s classes, layout and split sizes, the
  class in a few tokens at a fixed place: the labelled shape at the
  centre among 6-9 distractor shapes of random classes (the token-pruning
  toy task of Patch Slimming).
* ``toy_seg``: ADE20K layout (``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png``); label 0 is "other" and is
  ignored through ``reduce_zero_label=True``, labels 1..6 are the classes.
* ``toy_reid``: Market-1501 layout and naming (``bounding_box_train``,
  ``bounding_box_test``, ``query``; ``0002_c1s1_000451_03.jpg``; junk id
  ``-1`` and distractor id ``0000`` in the gallery), 6 cameras, plus a
  human-part parsing map per image under ``parsing/<subset>/<name>.png``
  (0 background, 1 head, 2 upper body, 3 lower body, 4 shoes). 80 train
  and 40 test ids dressed from one 8-colour palette (colour pairs recur
  with upper and lower body swapped), palette-coloured background clutter
  and, on 60% of the crops, palette-coloured occluders that the part map
  marks as background (v3; v2 had 30/30 ids of free colours).

Everything is drawn from one seeded generator per dataset and split, so the
same seed gives byte-identical files. Shapes vary in scale, position,
colour and background texture, so the tasks are learnable but not trivial.

Usage::

    python tools/misc/make_toy_data.py                 # all, into data/
    python tools/misc/make_toy_data.py --tasks det cls --out /tmp/toy
"""
import argparse
import dataclasses
import json
import math
import os
import os.path as osp
import shutil
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Per dataset: bump when its generated content changes, so stale copies
#: are regenerated (and results that depend on it are re-measured).
# cls 3 added the test split (train and val are unchanged)
TOY_DATA_VERSIONS = {'det': 3, 'cls': 3, 'glimpse': 1, 'seg': 2,
                     'reid': 3}
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(ROOT, 'data')
STAMP = '.complete'

DET_CLASSES = ('circle', 'rectangle', 'triangle', 'cross', 'ring')
CLS_CLASSES = ('circle', 'square', 'triangle', 'diamond', 'hexagon', 'star',
               'cross', 'ring', 'half_disc', 'bars')
SEG_CLASSES = ('sky', 'ground', 'disc', 'box', 'triangle', 'pole')
REID_PARTS = ('background', 'head', 'upper_body', 'lower_body', 'shoes')

Color = Tuple[int, int, int]


# ---------------------------------------------------------------- drawing
def _color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> Color:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _contrasting(rng: np.random.Generator, bg: np.ndarray) -> Color:
    """A random colour at least 100 (L1 over RGB) away from ``bg``."""
    for _ in range(50):
        col = np.array(_color(rng))
        if np.abs(col - bg).sum() > 100:
            break
    return tuple(int(v) for v in col)


def background(rng: np.random.Generator, w: int, h: int,
               noise: float = 18., strokes: int = 6) -> Image.Image:
    """A textured background: a linear gradient, noise and faint strokes.

    Args:
        noise (float): Upper end of the noise's standard deviation.
            Defaults to 18.
        strokes (int): Upper end (exclusive) of the number of strokes.
            Defaults to 6.
    """
    c0 = rng.uniform(0, 255, 3)
    c1 = rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xs * math.cos(angle) + ys * math.sin(angle))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = c0 + (c1 - c0) * t[..., None]
    img += rng.normal(0, rng.uniform(3, noise), size=img.shape)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(0, strokes))):
        pts = [tuple(rng.uniform(0, [w, h])) for _ in range(2)]
        draw.line(pts, fill=_color(rng), width=int(rng.integers(1, 3)))
    return pil


def _regular_polygon(cx: float, cy: float, r: float, n: int,
                     rot: float) -> List[Tuple[float, float]]:
    return [(cx + r * math.cos(rot + 2 * math.pi * i / n),
             cy + r * math.sin(rot + 2 * math.pi * i / n)) for i in range(n)]


def draw_shape(draw: ImageDraw.ImageDraw, name: str, box: Sequence[float],
               fill, rng: np.random.Generator) -> None:
    """Draw shape ``name`` filling the axis-aligned ``box`` (x1, y1, x2, y2).

    ``fill`` is a colour for images or a label for label maps.
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = min(w, h) / 2
    thick = max(2, int(round(min(w, h) * 0.22)))
    if name in ('circle', 'disc'):
        draw.ellipse(box, fill=fill)
    elif name in ('rectangle', 'square', 'box', 'pole'):
        draw.rectangle(box, fill=fill)
    elif name == 'triangle':
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=fill)
    elif name == 'diamond':
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=fill)
    elif name == 'hexagon':
        draw.polygon(_regular_polygon(cx, cy, r, 6, 0.0), fill=fill)
    elif name == 'star':
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            a = -math.pi / 2 + math.pi * i / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        draw.polygon(pts, fill=fill)
    elif name == 'cross':
        draw.rectangle((cx - thick / 2, y1, cx + thick / 2, y2), fill=fill)
        draw.rectangle((x1, cy - thick / 2, x2, cy + thick / 2), fill=fill)
    elif name == 'ring':
        draw.ellipse(box, outline=fill, width=thick)
    elif name == 'half_disc':
        draw.pieslice(box, 180, 360, fill=fill)
    elif name == 'bars':
        draw.rectangle((x1, y1, x2, y1 + h * 0.3), fill=fill)
        draw.rectangle((x1, y2 - h * 0.3, x2, y2), fill=fill)
    else:
        raise ValueError(f'unknown toy shape {name!r}')


def _save_jpeg(img: Image.Image, path: str) -> None:
    img.save(path, format='JPEG', quality=92)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) *
             (b[3] - b[1]) - inter)
    return inter / max(union, 1e-6)


# ---------------------------------------------------------------- datasets
@dataclasses.dataclass
class DetSpec:
    """What ``toy_det`` is made of (the defaults are the released set).

    The defaults give version 3 of the set; a new default needs a new
    ``TOY_DATA_VERSIONS['det']`` and the toy detection figures
    re-measured. Version 2 (400 images of 128-192 px, objects from 8 px up
    to 0.85 of the image, no clutter shapes) is
    ``DetSpec(num_train=400, side=(128, 192), obj_size=(8., math.inf),
    num_objects=(1, 6), num_distractors=(0, 0), noise=18., strokes=6)``:
    on it a CPU-sized RetinaNet learnt too little in minutes (teacher 0.04
    bbox mAP) for distillation to show (projects/defeat/README.md).
    """
    #: images per split
    num_train: int = 800
    num_val: int = 100
    #: image sides, in multiples of 8 px (inclusive range)
    side: Tuple[int, int] = (128, 128)
    #: object side, log-uniform between these (px); at most 0.85 of the
    #: image's short side. 16..96 px: FPN levels P3, P4 and P5 of a
    #: RetinaNet (anchors of 16, 32 and 64 px and their octaves)
    obj_size: Tuple[float, float] = (16., 96.)
    #: labelled objects per image (inclusive range)
    num_objects: Tuple[int, int] = (2, 5)
    #: unlabelled distractor shapes per image (inclusive range)
    num_distractors: Tuple[int, int] = (0, 2)
    #: standard deviation of the background noise (upper end of a uniform)
    noise: float = 8.
    #: background strokes per image (upper end, exclusive)
    strokes: int = 3
    #: most IoU a new object may have with an earlier one
    max_iou: float = 0.2


#: Shapes drawn as unlabelled clutter in ``toy_det``: none of its classes.
DET_DISTRACTORS = ('star', 'hexagon', 'half_disc', 'bars', 'diamond')


def _place(rng: np.random.Generator, w: int, h: int, lo: float, hi: float,
           boxes: List[List[float]], max_iou: float):
    """A box of log-uniform size in [lo, hi] px overlapping ``boxes`` by at
    most ``max_iou``; None after 20 tries."""
    hi = min(hi, 0.85 * min(w, h))
    for _try in range(20):
        size = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        aspect = math.exp(rng.uniform(-0.4, 0.4))
        bw = min(size * aspect, w - 1)
        bh = min(size / aspect, h - 1)
        x1 = rng.uniform(0, w - bw)
        y1 = rng.uniform(0, h - bh)
        box = [x1, y1, x1 + bw, y1 + bh]
        if all(_iou(box, b) < max_iou for b in boxes):
            return box
    return None


def make_det(out: str, seed: int, spec: Optional[DetSpec] = None) -> None:
    """COCO-style detection: 5 shape classes among unlabelled clutter.

    Args:
        out (str): The dataset folder to write.
        seed (int): Seed of the generator.
        spec (DetSpec, optional): What to draw. Defaults to ``DetSpec()``.
    """
    spec = spec or DetSpec()
    cats = [dict(id=i + 1, name=n, supercategory='shape')
            for i, n in enumerate(DET_CLASSES)]
    os.makedirs(osp.join(out, 'annotations'))
    lo8, hi8 = spec.side[0] // 8, spec.side[1] // 8
    for split, num, off in (('train', spec.num_train, 0),
                            ('val', spec.num_val, 1)):
        rng = np.random.default_rng([seed, 1, off])
        os.makedirs(osp.join(out, split))
        images, anns = [], []
        for idx in range(num):
            w = int(rng.integers(lo8, hi8 + 1)) * 8
            h = int(rng.integers(lo8, hi8 + 1)) * 8
            img = background(rng, w, h, noise=spec.noise,
                             strokes=spec.strokes)
            draw = ImageDraw.Draw(img)
            bg_mean = np.asarray(img).reshape(-1, 3).mean(0)
            boxes: List[List[float]] = []
            # the clutter first, so objects are drawn over it (no draw
            # from the generator without clutter: version 2's files)
            num_clutter = 0 if spec.num_distractors == (0, 0) else int(
                rng.integers(spec.num_distractors[0],
                             spec.num_distractors[1] + 1))
            for _ in range(num_clutter):
                box = _place(rng, w, h, *spec.obj_size, boxes, spec.max_iou)
                if box is None:
                    continue
                kind = DET_DISTRACTORS[int(rng.integers(
                    len(DET_DISTRACTORS)))]
                draw_shape(draw, kind, box, _contrasting(rng, bg_mean), rng)
                boxes.append(box)
            for _ in range(int(rng.integers(spec.num_objects[0],
                                            spec.num_objects[1] + 1))):
                box = _place(rng, w, h, *spec.obj_size, boxes, spec.max_iou)
                if box is None:
                    continue
                label = int(rng.integers(len(DET_CLASSES)))
                draw_shape(draw, DET_CLASSES[label], box,
                           _contrasting(rng, bg_mean), rng)
                boxes.append(box)
                x1, y1, x2, y2 = box
                anns.append(dict(
                    id=len(anns) + 1, image_id=idx + 1,
                    category_id=label + 1,
                    bbox=[round(x1, 2), round(y1, 2), round(x2 - x1, 2),
                          round(y2 - y1, 2)],
                    area=round((x2 - x1) * (y2 - y1), 2), iscrowd=0,
                    segmentation=[[round(v, 2) for v in (x1, y1, x2, y1, x2,
                                                         y2, x1, y2)]]))
            name = f'{idx + 1:012d}.jpg'
            _save_jpeg(img, osp.join(out, split, name))
            images.append(dict(id=idx + 1, file_name=name, width=w,
                               height=h))
        with open(osp.join(out, 'annotations', f'instances_{split}.json'),
                  'w') as f:
            json.dump(dict(images=images, annotations=anns, categories=cats,
                           info=dict(description='EVLab toy detection',
                                     version=TOY_DATA_VERSIONS['det'])), f)


def _write_imagenet_layout(out: str, seed: int, salt: int,
                           draw_image: Callable[[np.random.Generator, int],
                                                Image.Image]) -> None:
    """The ImageNet layout of ``toy_cls`` and ``toy_glimpse``: 260 train
    + 40 val + 200 test images per class, each drawn by
    ``draw_image(rng, label)`` from one generator per split."""
    os.makedirs(osp.join(out, 'meta'))
    with open(osp.join(out, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(CLS_CLASSES) + '\n')
    for split, per_class, off in (('train', 260, 0), ('val', 40, 1),
                                  ('test', 200, 2)):
        rng = np.random.default_rng([seed, salt, off])
        lines = []
        order = [(c, i) for i in range(per_class)
                 for c in range(len(CLS_CLASSES))]
        for n, (label, i) in enumerate(order):
            img = draw_image(rng, label)
            if split == 'train':
                rel = f'{CLS_CLASSES[label]}/{CLS_CLASSES[label]}_{i:05d}.JPEG'
            else:
                rel = f'toy_{split}_{n + 1:08d}.JPEG'
            os.makedirs(osp.dirname(osp.join(out, split, rel)), exist_ok=True)
            _save_jpeg(img, osp.join(out, split, rel))
            lines.append(f'{rel} {label}')
        with open(osp.join(out, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')


def make_cls(out: str, seed: int) -> None:
    """ImageNet-style classification: 10 classes, 64x64, 260 train + 40
    val + 200 test images each (the test split, flat like val, is for
    comparisons whose differences are small: 400 val images measure a
    top-1 near 80% to +-2 points, 2,000 to +-0.9)."""

    def draw_image(rng: np.random.Generator, label: int) -> Image.Image:
        img = background(rng, 64, 64)
        draw = ImageDraw.Draw(img)
        bg_mean = np.asarray(img).reshape(-1, 3).mean(0)
        # a small distractor of another class first, behind the object
        if rng.random() < 0.5:
            other = CLS_CLASSES[int(rng.integers(len(CLS_CLASSES)))]
            s = rng.uniform(6, 12)
            x, y = rng.uniform(0, 64 - s, 2)
            draw_shape(draw, other, (x, y, x + s, y + s), _color(rng), rng)
        s = rng.uniform(20, 52)
        x, y = rng.uniform(0, 64 - s, 2)
        draw_shape(draw, CLS_CLASSES[label], (x, y, x + s, y + s),
                   _contrasting(rng, bg_mean), rng)
        return img

    _write_imagenet_layout(out, seed, 2, draw_image)


#: ``toy_glimpse``: the labelled shape's box lies inside this central
#: square (pixels), every distractor's box outside it.
GLIMPSE_CENTRE = (22, 42)


def make_glimpse(out: str, seed: int) -> None:
    """``toy_cls``'s classes and layout, but the class sits in a few
    tokens at a fixed place: the labelled shape (14-18 px) at the centre
    of the 64x64 image (within ``GLIMPSE_CENTRE``, 2x2 to 3x3 patches of
    8 px), among 6-9 distractor shapes of the same sizes and random
    classes around it. A token-pruning method has to find the centre
    tokens; the other tokens look alike but say nothing of the label."""
    lo, hi = GLIMPSE_CENTRE

    def draw_image(rng: np.random.Generator, label: int) -> Image.Image:
        img = background(rng, 64, 64)
        draw = ImageDraw.Draw(img)
        bg_mean = np.asarray(img).reshape(-1, 3).mean(0)
        placed, wanted = 0, int(rng.integers(6, 10))
        for _ in range(200):  # distractors around the centre
            if placed == wanted:
                break
            s = rng.uniform(14, 18)
            x, y = rng.uniform(0, 64 - s, 2)
            if x + s > lo and x < hi and y + s > lo and y < hi:
                continue  # it would reach into the centre
            other = CLS_CLASSES[int(rng.integers(len(CLS_CLASSES)))]
            draw_shape(draw, other, (x, y, x + s, y + s),
                       _contrasting(rng, bg_mean), rng)
            placed += 1
        s = rng.uniform(14, 18)
        x, y = rng.uniform(lo, hi - s, 2)
        draw_shape(draw, CLS_CLASSES[label], (x, y, x + s, y + s),
                   _contrasting(rng, bg_mean), rng)
        return img

    _write_imagenet_layout(out, seed, 5, draw_image)


def make_seg(out: str, seed: int) -> None:
    """ADE20K-style segmentation: 200 train and 50 val images."""
    for split, ade, num, off in (('training', 'train', 200, 0),
                                 ('validation', 'val', 50, 1)):
        rng = np.random.default_rng([seed, 3, off])
        os.makedirs(osp.join(out, 'images', split))
        os.makedirs(osp.join(out, 'annotations', split))
        for idx in range(num):
            w = int(rng.integers(14, 21)) * 8
            h = int(rng.integers(14, 21)) * 8
            # sky over ground, split by a wavy horizon; label = index + 1
            sky, ground = background(rng, w, h), background(rng, w, h)
            horizon = rng.uniform(0.3, 0.7) * h
            amp, freq = rng.uniform(0, 0.08 * h), rng.uniform(0.5, 3)
            phase = rng.uniform(0, 2 * math.pi)
            xs = np.arange(w)
            line = horizon + amp * np.sin(2 * math.pi * freq * xs / w + phase)
            below = np.arange(h)[:, None] > line[None, :]
            img = np.where(below[..., None], np.asarray(ground),
                           np.asarray(sky))
            lab = np.where(below, 2, 1).astype(np.uint8)
            pil, lab_pil = Image.fromarray(img), Image.fromarray(lab)
            draw, ldraw = ImageDraw.Draw(pil), ImageDraw.Draw(lab_pil)
            bg_mean = img.reshape(-1, 3).mean(0)
            for _ in range(int(rng.integers(1, 6))):
                cls = int(rng.integers(2, len(SEG_CLASSES)))
                name = SEG_CLASSES[cls]
                s = rng.uniform(10, 0.6 * min(w, h))
                bw, bh = (s * 0.25, s * 1.6) if name == 'pole' else (s, s)
                bh = min(bh, h - 1)
                x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                box = (x, y, x + bw, y + bh)
                draw_shape(draw, name, box, _contrasting(rng, bg_mean), rng)
                draw_shape(ldraw, name, box, cls + 1, rng)
            # "other" clutter: ignored (label 0) as in ADE20K
            for _ in range(int(rng.integers(0, 3))):
                s = rng.uniform(4, 12)
                x, y = rng.uniform(0, w - s), rng.uniform(0, h - s)
                draw.ellipse((x, y, x + s, y + s), fill=_color(rng))
                ldraw.ellipse((x, y, x + s, y + s), fill=0)
            name = f'ADE_{ade}_{idx + 1:08d}'
            _save_jpeg(pil, osp.join(out, 'images', split, name + '.jpg'))
            lab_pil.save(osp.join(out, 'annotations', split, name + '.png'))


#: Clothing colours of the toy re-ID identities. Identities draw their
#: upper- and lower-body colours from this one palette, so many share the
#: same two colours in swapped roles (red over blue, blue over red), and
#: the background clutter uses it too: what tells identities apart is which
#: colour sits on which body part, the cue P2Net's part-aligned pooling
#: reads directly and a global average pool has to learn from few images.
REID_PALETTE = ((200, 30, 30), (30, 60, 200), (30, 160, 40),
                (220, 200, 30), (150, 40, 170), (240, 130, 20),
                (235, 235, 235), (120, 70, 30))
REID_SHOES = ((20, 20, 20), (90, 50, 20), (60, 60, 90))


def _jitter(rng: np.random.Generator, colour: Color, amount: float = 18.
            ) -> Color:
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255))
                 for c in colour)


def _person(rng: np.random.Generator, ident: dict, cam: dict
            ) -> Tuple[Image.Image, Image.Image]:
    """Render one 128x64 pedestrian crop and its part-parsing map.

    The background carries 3-7 blobs in the clothing palette (label 0 in
    the part map), the person's scale and position vary from crop to crop,
    as detector boxes do, and 60% of the crops have one or two occluders in
    palette colours (bags, other people), label 0 in the map: in the image
    they look like clothing, the parser knows they are not.
    """
    w, h = 64, 128
    img = background(rng, w, h)
    arr = np.asarray(img).astype(np.float32) * 0.5 + np.array(cam['bg']) * 0.5
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    parse = Image.new('L', (w, h), 0)
    draw, pdraw = ImageDraw.Draw(img), ImageDraw.Draw(parse)
    for _ in range(int(rng.integers(3, 8))):  # palette clutter
        bw_, bh_ = rng.uniform(8, 24), rng.uniform(8, 30)
        x0, y0 = rng.uniform(-4, w - bw_ + 4), rng.uniform(-4, h - bh_ + 4)
        col = REID_PALETTE[int(rng.integers(len(REID_PALETTE)))]
        draw.rectangle((x0, y0, x0 + bw_, y0 + bh_), fill=_jitter(rng, col))
    scale = ident['height'] * rng.uniform(0.78, 1.0)
    cx = w / 2 + rng.uniform(-8, 8)
    H = (h - 4) * scale
    top = rng.uniform(2, max(2.5, h - 2 - H))
    bw = ident['width'] * 26 * rng.uniform(0.9, 1.1)

    def part(box, colour, label, shape='rectangle'):
        col = _jitter(rng, tuple(int(np.clip(c * cam['gain'], 0, 255))
                                 for c in colour))
        if shape == 'ellipse':
            draw.ellipse(box, fill=col)
            pdraw.ellipse(box, fill=label)
        else:
            draw.rectangle(box, fill=col)
            pdraw.rectangle(box, fill=label)

    head_h = H * 0.15
    part((cx - head_h * 0.4, top, cx + head_h * 0.4, top + head_h),
         ident['skin'], 1, 'ellipse')
    y_up = top + head_h
    y_low = top + H * 0.55
    part((cx - bw / 2, y_up, cx + bw / 2, y_low), ident['upper'], 2)
    if ident['stripes']:
        n = ident['stripes']
        for k in range(n):
            y = y_up + (k + 0.5) * (y_low - y_up) / n
            draw.line([(cx - bw / 2, y), (cx + bw / 2, y)],
                      fill=ident['stripe_colour'], width=2)
    y_shoe = top + H * 0.94
    leg_w = bw * 0.42
    for sx in (-1, 1):
        x0 = cx + sx * bw * 0.05 if sx > 0 else cx - bw * 0.05 - leg_w
        part((x0, y_low, x0 + leg_w, y_shoe), ident['lower'], 3)
        part((x0, y_shoe, x0 + leg_w, top + H), ident['shoes'], 4)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        parse = parse.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.6:  # occluders in garment colours (bags, others)
        for _ in range(int(rng.integers(1, 3))):
            ow, oh = rng.uniform(12, 28), rng.uniform(15, 40)
            ox = rng.uniform(0, w - ow)
            oy = rng.uniform(h * 0.2, h - oh)
            col = REID_PALETTE[int(rng.integers(len(REID_PALETTE)))]
            ImageDraw.Draw(img).rectangle((ox, oy, ox + ow, oy + oh),
                                          fill=_jitter(rng, col))
            ImageDraw.Draw(parse).rectangle((ox, oy, ox + ow, oy + oh),
                                            fill=0)
    return img, parse


def make_reid(out: str, seed: int) -> None:
    """Market-1501-style re-ID: 80 train ids, 40 test ids, 6 cameras."""
    rng = np.random.default_rng([seed, 4])
    cams = [dict(gain=rng.uniform(0.8, 1.15), bg=_color(rng))
            for _ in range(6)]
    pids = rng.choice(np.arange(2, 1500), size=120, replace=False)
    pids.sort()
    # (upper, lower, shoes) without repeats: ordered palette pairs, so that
    # colour sets recur with the roles swapped
    combos = [(u, lo, sh) for u in range(len(REID_PALETTE))
              for lo in range(len(REID_PALETTE)) if lo != u
              for sh in range(len(REID_SHOES))]
    picks = rng.choice(len(combos), size=len(pids) + 30, replace=False)
    next_pick = iter(picks.tolist())

    def identity() -> dict:
        u, lo, sh = combos[next(next_pick)]
        return dict(upper=REID_PALETTE[u], lower=REID_PALETTE[lo],
                    shoes=REID_SHOES[sh],
                    skin=_color(rng, 170, 220),
                    stripes=int(rng.choice([0, 0, 0, 2])),
                    stripe_colour=_color(rng),
                    height=rng.uniform(0.88, 1.0),
                    width=rng.uniform(0.85, 1.15))

    subsets = ('bounding_box_train', 'bounding_box_test', 'query')
    for sub in subsets:
        os.makedirs(osp.join(out, sub))
        os.makedirs(osp.join(out, 'parsing', sub))
    frame = [0]

    def save(sub: str, pid: str, cam_id: int, img, parse) -> None:
        frame[0] += int(rng.integers(1, 200))
        seq = int(rng.integers(1, 7))
        name = f'{pid}_c{cam_id + 1}s{seq}_{frame[0]:06d}_01'
        _save_jpeg(img, osp.join(out, sub, name + '.jpg'))
        parse.save(osp.join(out, 'parsing', sub, name + '.png'))

    for k, pid in enumerate(pids):
        ident = identity()
        test = k % 3 == 2
        ncam = int(rng.integers(2, 5))
        cam_ids = rng.choice(6, size=ncam, replace=False)
        for c in cam_ids:
            for _ in range(int(rng.integers(2, 4))):
                img, parse = _person(rng, ident, cams[c])
                sub = 'bounding_box_test' if test else 'bounding_box_train'
                save(sub, f'{pid:04d}', int(c), img, parse)
            if test:
                img, parse = _person(rng, ident, cams[c])
                save('query', f'{pid:04d}', int(c), img, parse)
    # distractors (0000) and junk (-1) in the gallery, as in Market-1501
    for pid in ('0000', '-1'):
        for _ in range(15):
            c = int(rng.integers(6))
            img, parse = _person(rng, identity(), cams[c])
            save('bounding_box_test', pid, c, img, parse)


TASKS: Dict[str, Tuple[str, Callable[[str, int], None]]] = {
    'det': ('toy_det', make_det),
    'cls': ('toy_cls', make_cls),
    'glimpse': ('toy_glimpse', make_glimpse),
    'seg': ('toy_seg', make_seg),
    'reid': ('toy_reid', make_reid),
}


def stamp_text(task: str, seed: int) -> str:
    """What the stamp of a finished ``task`` dataset says."""
    return f'version={TOY_DATA_VERSIONS[task]} seed={seed}'


def is_complete(path: str, seed: int, task: str) -> bool:
    """Whether ``path`` holds a finished ``task`` dataset of this version
    and seed."""
    stamp = osp.join(path, STAMP)
    if not osp.isfile(stamp):
        return False
    with open(stamp) as f:
        return f.read().strip() == stamp_text(task, seed)


def make(task: str, out_root: str, seed: int = 0, force: bool = False
         ) -> str:
    """Generate one toy dataset; returns its folder.

    The dataset is written to a temporary sibling folder and renamed into
    place only when complete, so an interrupted run never leaves a
    half-written dataset behind.
    """
    name, fn = TASKS[task]
    dst = osp.join(out_root, name)
    if not force and is_complete(dst, seed, task):
        return dst
    tmp = dst + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    fn(tmp, seed)
    with open(osp.join(tmp, STAMP), 'w') as f:
        f.write(stamp_text(task, seed) + '\n')
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='root folder (default: data/ in the repo)')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS),
                        choices=list(TASKS), help='datasets to generate')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if a complete copy exists')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    for task in args.tasks:
        name = TASKS[task][0]
        dst = osp.join(args.out, name)
        if not args.force and is_complete(dst, args.seed, task):
            print(f'{name}: up to date in {dst}')
            continue
        t0 = time.time()
        make(task, args.out, args.seed, force=True)
        print(f'{name}: written to {dst} ({time.time() - t0:.1f}s)')
    sys.stdout.flush()


if __name__ == '__main__':
    main()

#!/usr/bin/env python
# Copyright (c) EVLab contributors.
"""`make demo`: the DeFeat story on the toy COCO set.

1. train a larger teacher detector (or reuse the one trained before, when
   its config and the toy data version are unchanged);
2. train the student alone (the same detector at half the teacher's
   width, for half its epochs);
3. train the same student with DeFeat under the same schedule and seed;
4. evaluate all three with ``tools/test.py``, print a table (bbox mAP,
   mAP@0.5/0.75, AP_S/M, training time) and the gain, and save two
   pictures: the detections of the three models on the same val images,
   and their val mAP curves.

Every step runs the shared tools exactly as a user would, with a progress
bar. ``--detector faster_rcnn`` tells the two-stage story (neck and RoI
terms) the same way. With several ``--seeds`` the students are trained
once per seed (one teacher) and the table gives mean and spread;
``--ablation`` adds the object-only, background-only and COCO-weight
students; ``--reuse`` keeps students finished by an earlier run with the
same settings (so an interrupted multi-seed run continues):

    python tools/misc/demo.py --seeds 0 1 2 3 4 --ablation --reuse \\
        --work-dir work_dirs/defeat_seeds
"""
import argparse
import glob
import hashlib
import json
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from tools.misc.make_toy_data import TOY_DATA_VERSIONS  # noqa: E402

#: Per detector: the configs of the three steps and the table's labels.
DETECTORS = {
    'retinanet': dict(
        configs={
            'teacher': 'configs/defeat/toy_retinanet_teacher.py',
            'student': 'configs/defeat/toy_retinanet_student.py',
            'defeat': 'configs/defeat/toy_retinanet_defeat.py',
        },
        labels={
            'teacher': 'teacher  RetinaNet-R18 at 1/2 width, 12 ep',
            'student': 'student  R18 at 1/4 width, 6 ep, alone',
            'defeat': 'student  + DeFeat (neck P3-P5, obj + bg)',
            'defeat_obj': 'student  + DeFeat, object part only',
            'defeat_bg': 'student  + DeFeat, background part only',
            'defeat_coco': 'student  + DeFeat, COCO weights 4 : 16',
        }),
    'faster_rcnn': dict(
        configs={
            'teacher': 'configs/defeat/toy_faster_rcnn_teacher.py',
            'student': 'configs/defeat/toy_faster_rcnn_student.py',
            'defeat': 'configs/defeat/toy_faster_rcnn_defeat.py',
        },
        labels={
            'teacher': 'teacher  Faster R-CNN-R18 at 1/2 width',
            'student': 'student  R18 at 1/4 width, alone',
            'defeat': 'student  + DeFeat (neck + RoI, obj + bg)',
            'defeat_obj': 'student  + DeFeat, object parts only',
            'defeat_bg': 'student  + DeFeat, background parts only',
            'defeat_coco': 'student  + DeFeat, COCO weights',
        }),
}
#: Column titles of the detections picture.
TITLES = {'teacher': 'teacher', 'student': 'student alone',
          'defeat': 'student + DeFeat'}
#: The ablation students: extra ``--cfg-options`` of the DeFeat config.
ABLATION = {
    'defeat_obj': ['model.alpha_bg=0.0', 'model.beta_bg=0.0'],
    'defeat_bg': ['model.alpha_obj=0.0', 'model.beta_obj=0.0'],
    'defeat_coco': ['model.alpha_obj=4.0', 'model.alpha_bg=16.0'],
}
#: What the README's multi-seed runs say, printed under the table: one
#: machine's seeded run is not evidence on its own.
README_VERDICT = {
    'retinanet': (
        'Seeded runs repeat exactly on one machine, not across CPUs. Over 5 '
        'seeds (projects/defeat/README.md, one teacher) the distilled '
        'student was ahead on every seed: gain +0.158 ± 0.013 bbox mAP '
        '(0.142 ± 0.013 alone -> 0.300 ± 0.010, +111%).'),
    'faster_rcnn': (
        'Seeded runs repeat exactly on one machine, not across CPUs. '
        'One run of seed 0 on this machine (projects/defeat/README.md): '
        'teacher 0.640, student alone 0.460, + DeFeat 0.503 (+0.043, '
        '+9%); not yet over several seeds.'),
}
#: (toy_det v3 has no COCO-"large" object, > 96^2 px: AP_L would be -1)
METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s',
           'bbox_mAP_m')
#: the seed of the one teacher (the configs' seed)
TEACHER_SEED = 0
#: val images drawn in the detections picture (ids of toy_det's val split)
PICTURE_IMAGES = (1, 2, 3, 4)
SCORE_THR = 0.3


def run(cmd: List[str]) -> None:
    print('$ ' + ' '.join(osp.relpath(c, ROOT) if c.startswith(ROOT) else c
                          for c in cmd), flush=True)
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        sys.exit(f'demo: command failed with exit code {code}')


def latest_metrics(test_dir: str) -> dict:
    """Metrics of the newest test run in ``test_dir``."""
    files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')),
                   key=osp.getmtime)
    if not files:
        sys.exit(f'demo: no metrics were written under {test_dir}')
    with open(files[-1]) as f:
        metrics = json.loads(f.read().strip().splitlines()[-1])
    return {k.split('/')[-1]: v for k, v in metrics.items()}


def val_curve(work_dir: str) -> List[List[float]]:
    """``[epoch, bbox mAP]`` of every validation of the newest training
    run in ``work_dir`` (read by ``analyze_logs.py``)."""
    from projects.common.errors import EVLabError
    from tools.analysis_tools import analyze_logs
    try:
        xs, ys, _ = analyze_logs.series(analyze_logs.load_log(work_dir),
                                        'coco/bbox_mAP')
    except (KeyError, EVLabError):  # no log, or no validation yet
        return []
    return [[x, y] for x, y in zip(xs, ys)]


def config_key(config: str, options: Sequence[str]) -> str:
    """What a finished step depends on: the resolved config, the options
    and the toy detection data version."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    text = cfg.pretty_text + '\n'.join(options)
    text += f'\ntoy_det version {TOY_DATA_VERSIONS["det"]}'
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def wrapper_config(work_dir: str, config: str, val_interval: int) -> str:
    """The config plus a progress bar in place of periodic log lines and
    a validation every ``val_interval`` epochs (the curves)."""
    # not in work_dir itself: train.py dumps the resolved config there
    # under the config's own file name
    os.makedirs(osp.join(work_dir, 'config'), exist_ok=True)
    path = osp.join(work_dir, 'config', 'demo_config.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.join(ROOT, config)!r}]\n"
                "custom_hooks = [dict(type='ProgressBarHook')]\n"
                "default_hooks = dict(logger=dict(interval=100000))\n"
                f"train_cfg = dict(val_interval={val_interval})\n")
    return path


def train_and_test(name: str, config: str, work_dir: str, seed: int,
                   options: List[str], reuse: bool,
                   checkpoint: Optional[str] = None,
                   val_interval: int = 2) -> dict:
    """Train ``config`` into ``work_dir`` (unless ``reuse`` finds it done
    with the same config, options and data version, or ``checkpoint`` is
    given), test it, return its metrics, time, curve and checkpoint."""
    done = osp.join(work_dir, 'demo_result.json')
    options = [f'randomness.seed={seed}'] + list(options)
    key = config_key(config, options + (
        [f'evaluated checkpoint {osp.abspath(checkpoint)}']
        if checkpoint else []))
    if reuse and osp.isfile(done):
        with open(done) as f:
            result = json.load(f)
        if result.get('key') != key:
            print(f'demo: {name} in {osp.relpath(work_dir, ROOT)} was '
                  'trained with another config or toy data version; '
                  'training it again', flush=True)
        elif not osp.isfile(result['checkpoint']):
            print(f'demo: the checkpoint of {name} is gone; training it '
                  'again', flush=True)
        else:
            print(f'demo: reusing {name} (seed {seed}) trained in '
                  f'{osp.relpath(work_dir, ROOT)}: same config and toy '
                  f'data v{TOY_DATA_VERSIONS["det"]} (--fresh to retrain)',
                  flush=True)
            return result
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    print(f'\n=== {name}, seed {seed} ===', flush=True)
    cfg = wrapper_config(work_dir, config, val_interval)
    py = sys.executable
    curve: List[List[float]] = []
    if checkpoint is None:
        t0 = time.time()
        run([py, osp.join(ROOT, 'tools', 'train.py'), cfg, '--work-dir',
             work_dir, '--cfg-options'] + options)
        train_min = (time.time() - t0) / 60
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        curve = val_curve(work_dir)
    else:
        train_min, ckpt = float('nan'), osp.abspath(checkpoint)
    test_dir = osp.join(work_dir, 'test')
    run([py, osp.join(ROOT, 'tools', 'test.py'), cfg, ckpt, '--work-dir',
         test_dir, '--cfg-options'] + options)
    result = dict(metrics=latest_metrics(test_dir), train_min=train_min,
                  checkpoint=ckpt, seed=seed, key=key, config=cfg,
                  options=options, curve=curve)
    with open(done, 'w') as f:
        json.dump(result, f, indent=1)
    return result


def fmt(values: List[float], scale: float = 1., digits: int = 3) -> str:
    values = [v * scale for v in values if v == v]  # NaN: not measured
    if not values:
        return 'n/a'
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return (f'{statistics.mean(values):.{digits}f} ± '
            f'{statistics.stdev(values):.{digits}f}')


def table(results: Dict[str, List[dict]], labels: Dict[str, str]) -> str:
    head = ('| model | bbox mAP | mAP@0.5 | mAP@0.75 | AP_S | AP_M | '
            'train time (min) | seeds |')
    lines = [head, '|' + '---|' * 8]
    for name, runs in results.items():
        if not runs:
            continue
        cells = [fmt([r['metrics'][m] for r in runs]) for m in METRICS]
        cells.append(fmt([r['train_min'] for r in runs], digits=1))
        seeds = ','.join(str(r['seed']) for r in runs)
        lines.append(f'| {labels[name]} | ' + ' | '.join(cells) +
                     f' | {seeds} |')
    return '\n'.join(lines)


def gains(results: Dict[str, List[dict]], name: str = 'defeat'
          ) -> List[float]:
    """Per seed: bbox mAP of ``name`` minus that of the student alone."""
    alone = {r['seed']: r['metrics']['bbox_mAP'] for r in results['student']}
    return [r['metrics']['bbox_mAP'] - alone[r['seed']]
            for r in results[name] if r['seed'] in alone]


def gain_line(results: Dict[str, List[dict]], name: str = 'defeat') -> str:
    got = gains(results, name)
    alone = statistics.mean(r['metrics']['bbox_mAP']
                            for r in results['student'])
    verdict = 'ahead of' if min(got) > 0 else 'NOT always ahead of'
    rel = 100 * statistics.mean(got) / alone if alone > 0 else float('nan')
    return (f'Distilled student {verdict} the student alone: bbox mAP gain '
            f'{fmt(got)} ({rel:+.0f}% relative; per seed '
            f'{", ".join(f"{g:+.3f}" for g in got)})')


def draw_detections(models: List[dict], out: str, ann_file: str,
                    img_dir: str, classes: Sequence[str],
                    image_ids: Sequence[int] = PICTURE_IMAGES) -> str:
    """One PNG: a row per val image, the ground truth and each model's
    detections (score >= ``SCORE_THR``) side by side.

    ``models``: dicts with ``label``, ``config``, ``checkpoint`` and
    ``options`` (``--cfg-options`` strings).
    """
    from mmdet.apis import inference_detector, init_detector
    from mmengine.config import DictAction
    from PIL import Image, ImageDraw

    from projects.common import checkpoint
    checkpoint.install()  # mmengine checkpoints under torch's safe loader
    with open(ann_file) as f:
        coco = json.load(f)
    images = {im['id']: im for im in coco['images']}
    paths = [osp.join(img_dir, images[i]['file_name']) for i in image_ids]
    columns = [('ground truth', [
        [(a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
          a['bbox'][1] + a['bbox'][3], a['category_id'] - 1, None)
         for a in coco['annotations'] if a['image_id'] == i]
        for i in image_ids])]
    for spec in models:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        options = (parser.parse_args(['--o'] + spec['options']).o
                   if spec['options'] else None)
        model = init_detector(spec['config'], spec['checkpoint'],
                              device='cpu', cfg_options=options)
        rows = []
        for path in paths:
            pred = inference_detector(model, path).pred_instances
            keep = pred.scores >= SCORE_THR
            rows.append([(*box.tolist(), int(label), float(score))
                         for box, label, score in zip(
                             pred.bboxes[keep], pred.labels[keep],
                             pred.scores[keep])])
        columns.append((spec['label'], rows))
        del model
    zoom, pad, head = 3, 6, 22
    sizes = [Image.open(p).size for p in paths]
    cell_w = max(w for w, _ in sizes) * zoom
    cell_hs = [h * zoom for _, h in sizes]
    canvas = Image.new('RGB', (len(columns) * (cell_w + pad) + pad,
                               head + sum(cell_hs) + pad * (len(paths) + 1)),
                       'white')
    draw = ImageDraw.Draw(canvas)
    palette = [(230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48),
               (145, 30, 180), (70, 240, 240), (240, 50, 230)]
    for c, (title, _) in enumerate(columns):
        draw.text((pad + c * (cell_w + pad), 5), title, fill='black')
    y = head
    for r, path in enumerate(paths):
        img = Image.open(path).convert('RGB')
        img = img.resize((img.width * zoom, img.height * zoom),
                         Image.NEAREST)
        for c, (_, rows) in enumerate(columns):
            x = pad + c * (cell_w + pad)
            cell = img.copy()
            cdraw = ImageDraw.Draw(cell)
            for x1, y1, x2, y2, label, score in rows[r]:
                col = palette[label % len(palette)]
                box = [v * zoom for v in (x1, y1, x2, y2)]
                cdraw.rectangle(box, outline=col, width=2)
                text = classes[label] + ('' if score is None
                                         else f' {score:.2f}')
                tx, ty = box[0], max(0, box[1] - 11)
                cdraw.rectangle([tx, ty, tx + 6 * len(text) + 2, ty + 11],
                                fill=col)
                cdraw.text((tx + 1, ty), text, fill='white')
            canvas.paste(cell, (x, y))
        y += cell_hs[r] + pad
    canvas.save(out)
    return out


def draw_curves(curves: Dict[str, List[List[List[float]]]],
                labels: Dict[str, str], out: str) -> str:
    """One PNG of val bbox mAP against epoch; per model the mean over its
    seeds with the range shaded."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, runs in curves.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        ep = np.array([p[0] for p in runs[0][:n]])
        val = np.array([[p[1] for p in r[:n]] for r in runs])
        line, = ax.plot(ep, val.mean(0), marker='o',
                        label=f'{labels[name].split("  ", 1)[1]}'
                        f' ({len(runs)} seed{"s" * (len(runs) > 1)})')
        if len(runs) > 1:
            ax.fill_between(ep, val.min(0), val.max(0), alpha=0.2,
                            color=line.get_color())
    ax.set_xlabel('epoch')
    ax.set_ylabel('val bbox mAP (COCO mAP@[.5:.95])')
    ax.set_title('DeFeat on toy COCO: validation during training')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--detector', choices=sorted(DETECTORS),
                        default='retinanet')
    parser.add_argument('--work-dir',
                        help='defaults to work_dirs/demo (RetinaNet) or '
                        'work_dirs/demo_faster_rcnn')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help=f'student seeds (the teacher is trained '
                        f'once, with seed {TEACHER_SEED})')
    parser.add_argument('--ablation', action='store_true',
                        help='also the object-only, background-only and '
                        'COCO-weight DeFeat students')
    parser.add_argument('--reuse', action='store_true',
                        help='keep students that an earlier run finished '
                        'with the same config, seed and data version (the '
                        'teacher is always kept when they are unchanged)')
    parser.add_argument('--fresh', action='store_true',
                        help='retrain the teacher too')
    parser.add_argument('--teacher-ckpt',
                        help='use this trained teacher instead of training '
                        'one (it is still evaluated)')
    args = parser.parse_args(argv)
    det = DETECTORS[args.detector]
    configs, labels = det['configs'], det['labels']
    work = osp.join(ROOT, args.work_dir or (
        'work_dirs/demo' if args.detector == 'retinanet'
        else f'work_dirs/demo_{args.detector}'))
    t0 = time.time()
    if args.teacher_ckpt and not osp.isfile(args.teacher_ckpt):
        sys.exit(f'demo: --teacher-ckpt {args.teacher_ckpt} does not exist')
    # one teacher for every student seed: its config's seed
    teacher = train_and_test('teacher', configs['teacher'],
                             osp.join(work, 'teacher'), TEACHER_SEED, [],
                             reuse=not args.fresh,
                             checkpoint=args.teacher_ckpt, val_interval=4)
    names = ['student', 'defeat'] + (list(ABLATION) if args.ablation
                                     else [])
    results: Dict[str, List[dict]] = {'teacher': [teacher]}
    results.update({n: [] for n in names})
    kd = [f'model.teacher_ckpt={teacher["checkpoint"]}']
    for seed in args.seeds:
        for name in names:
            config = configs['student' if name == 'student' else 'defeat']
            options = [] if name == 'student' else kd + ABLATION.get(name, [])
            results[name].append(train_and_test(
                name, config, osp.join(work, f'{name}_seed{seed}'), seed,
                options, reuse=args.reuse and not args.fresh))
    text = table(results, labels)
    with open(osp.join(work, 'results.md'), 'w') as f:
        f.write(text + '\n')
    print('\ndemo: drawing the pictures', flush=True)
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, configs['student']))
    val = cfg.val_dataloader.dataset
    pictures = [
        draw_detections(
            [dict(label=TITLES[n], config=results[n][0]['config'],
                  checkpoint=results[n][0]['checkpoint'],
                  options=results[n][0]['options'])
             for n in ('teacher', 'student', 'defeat')],
            osp.join(work, 'detections.png'), cfg.val_evaluator.ann_file,
            osp.join(val.data_root, val.data_prefix.img),
            cfg.train_dataloader.dataset.metainfo.classes),
        draw_curves({n: [r['curve'] for r in results[n]]
                     for n in ('teacher', 'student', 'defeat')}, labels,
                    osp.join(work, 'val_map_curves.png')),
    ]
    print(f'\nDeFeat ({args.detector}) on toy COCO (val, {len(args.seeds)} '
          f'seed(s), {(time.time() - t0) / 60:.1f} min in all):\n')
    print(text)
    print()
    print(gain_line(results))
    for name in ABLATION if args.ablation else ():
        print(f'  {labels[name].split("  ", 1)[1]}: '
              + gain_line(results, name).split(': ', 1)[1])
    print(README_VERDICT[args.detector])
    print(f'table saved to {osp.relpath(osp.join(work, "results.md"), ROOT)}')
    for path in pictures:
        print(f'picture: {osp.relpath(path, ROOT)}')


if __name__ == '__main__':
    main()

# Copyright (c) EVLab contributors.
"""What ``tools/train.py`` and ``tools/test.py`` share.

Config loading with clear errors, the dataset pre-flight check, and
:func:`cli` which turns mistakes in the user's input into one readable line
instead of a deep traceback. No host library is imported here: the config's
``default_scope`` decides whether mmdet, mmseg or mmpretrain builds the run.
"""
import difflib
import functools
import os
import os.path as osp
import re
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config

from . import data_check
from .errors import EVLabError

DEBUG_ENV = 'EVLAB_DEBUG'
TOY_HINT = ('For the toy datasets run `python tools/misc/make_toy_data.py` '
            '(or `make data`); for real datasets see docs/get_started.md.')


def _toy_alternative(config_path: str) -> Optional[str]:
    """The toy config next to ``config_path`` that shares most words of its
    name and folder (``retinanet_r50.py`` in ``configs/defeat/`` ->
    ``configs/defeat/toy_retinanet_defeat.py``), or None."""
    folder = osp.dirname(osp.abspath(config_path))
    words = set(re.split(r'[_\-./]+', osp.basename(config_path)[:-3]))
    words |= set(re.split(r'[_\-]+', osp.basename(folder)))
    candidates = sorted(n for n in os.listdir(folder)
                        if 'toy' in n and n.endswith('.py')) \
        if osp.isdir(folder) else []
    if not candidates or 'toy' in osp.basename(config_path):
        return None
    best = max(candidates, key=lambda n: len(
        words & set(re.split(r'[_\-.]+', n[:-3]))))
    path = osp.join(folder, best)
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return osp.relpath(path, root) if path.startswith(root) else path


def missing_data_hint(cfg: Config, ds: dict) -> str:
    """What to do about a dataset folder or annotation file that is not
    there: for the toy data, how to generate it; for a real dataset, what
    goes where and the toy config that runs the same method without it."""
    root = ds.get('data_root') or ''
    if 'toy_' in osp.basename(osp.normpath(root)):
        return TOY_HINT
    files = [osp.join(root, ds['ann_file'])] if ds.get('ann_file') else []
    prefix = ds.get('data_prefix') or {}
    files += [osp.join(root, v) for v in
              (prefix.values() if isinstance(prefix, dict) else [prefix])
              if isinstance(v, str) and v]
    hint = (f'Put the {ds.get("type", "dataset")} files there (or a link '
            f'to them): {", ".join(files)}; see docs/get_started.md, '
            f'"Real datasets".' if files else
            'See docs/get_started.md, "Real datasets".')
    toy = _toy_alternative(cfg.filename) if cfg.filename else None
    if toy:
        hint += (f' To run the method without it, on generated toy data: '
                 f'python tools/misc/make_toy_data.py && python '
                 f'tools/train.py {toy}')
    return hint


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config file, naming the file in every error.

    ``--cfg-options`` are merged and their types checked
    (:func:`check_option_types`); a top-level key that looks like a
    misspelt Runner key gets a ``warning:`` line on stderr
    (:func:`unknown_key_warnings`).

    Args:
        path (str): Path of the config file, or a host library's config
            as ``'mmpretrain::deit/deit-small_4xb256_in1k.py'``.
        cfg_options (dict, optional): ``--cfg-options`` to merge.
            Defaults to None.
    """
    if '::' not in path and not osp.isfile(path):
        raise EVLabError(f'config file {path!r} does not exist')
    try:
        if '::' in path:  # a host's own config: 'mmpretrain::deit/...py'
            from mmengine.hub import get_config
            cfg = get_config(path)
        else:
            cfg = Config.fromfile(path)
    except (SyntaxError, NameError, TypeError, KeyError, ValueError,
            ImportError, FileNotFoundError) as e:
        raise EVLabError(
            f'config file {path!r} could not be loaded: '
            f'{type(e).__name__}: {e}') from e
    if cfg_options:
        before = {key: _lookup(cfg, key) for key in cfg_options}
        try:
            cfg.merge_from_dict(cfg_options)
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise EVLabError(f'--cfg-options could not be merged into '
                             f'{path!r}: {e}') from e
        check_option_types(cfg_options, before)
    if cfg.get('default_scope') is None:
        raise EVLabError(
            f'config file {path!r} has no `default_scope`; inherit a base '
            f'config of mmdet, mmseg or mmpretrain or set it, e.g. '
            f"default_scope = 'mmdet'")
    for line in unknown_key_warnings(cfg, path):
        print(line, file=sys.stderr)
    return cfg


_MISSING = object()


def _lookup(cfg: Any, key: str) -> Any:
    """The value at a dotted ``--cfg-options`` key (list indices as
    digits), or ``_MISSING``."""
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


#: Leaf names that are integers (:data:`INT_OPTIONS`) or numbers
#: (:data:`FLOAT_OPTIONS`) in every OpenMMLab config; they type the
#: ``--cfg-options`` keys that the config does not set itself.
INT_OPTIONS = frozenset({
    'batch_size', 'num_workers', 'prefetch_factor', 'max_epochs',
    'max_iters', 'val_interval', 'val_begin', 'interval', 'max_keep_ckpts',
    'seed', 'num_classes', 'base_batch_size', 'begin', 'end', 'T_max',
    'warmup_iters', 'save_begin'
})
FLOAT_OPTIONS = frozenset({
    'lr', 'weight_decay', 'momentum', 'eps', 'start_factor', 'end_factor',
    'eta_min', 'gamma', 'max_norm', 'loss_weight', 'factor', 'temperature'
})


def _expected_type(leaf: str, before: Any) -> Optional[str]:
    """What a ``--cfg-options`` value must be, from the config's own value
    (or, for a key the config lacks, from its name)."""
    if isinstance(before, bool):
        return 'True or False'
    if leaf in INT_OPTIONS and (before is _MISSING or
                                isinstance(before, int)):
        return 'an integer'
    if isinstance(before, (int, float)) or (before is _MISSING
                                            and leaf in FLOAT_OPTIONS):
        return 'a number'
    return None


def check_option_types(options: Dict[str, Any],
                       before: Dict[str, Any]) -> None:
    """Refuse ``--cfg-options`` values of the wrong type, naming the key.

    mmengine's ``DictAction`` parses a value as an int, a float, a bool or
    None when it can and keeps it a string otherwise, so a typo
    (``batch_size=abc``, ``lr=1e-3x``) reaches the DataLoader, the optimizer
    or the loop as a string and fails there, in a traceback that often does
    not contain the value (``'<=' not supported between instances of
    'float' and 'str'``), and sometimes only hours into the run (an
    ``interval`` read at the first checkpoint). Catching those errors at
    the point of failure would mean guessing which option caused them.

    The expected type comes instead from the config itself: where it holds
    a number (or a bool) at that key, the option must be one too; where it
    holds an integer at a key that is an integer in every OpenMMLab config
    (:data:`INT_OPTIONS`), the option must not be a float. Keys the config
    does not set yet are checked by their name (:data:`INT_OPTIONS`,
    :data:`FLOAT_OPTIONS`). ``None`` is always accepted (it switches many
    options off), and so is an integer where a float is expected.

    Args:
        options (dict): The parsed ``--cfg-options``.
        before (dict): Each option key's value in the config before the
            merge, or ``_MISSING``.

    Raises:
        EVLabError: Naming the key, the value, the expected type and the
            config's value.
    """
    for key, value in options.items():
        if value is None:
            continue
        orig = before.get(key, _MISSING)
        expected = _expected_type(key.rsplit('.', 1)[-1], orig)
        if expected is None:
            continue
        if expected == 'True or False':
            ok = isinstance(value, bool) or value in (0, 1)
        elif expected == 'an integer':
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and \
                not isinstance(value, bool)
        if not ok:
            got = (f'the string {value!r}' if isinstance(value, str) else
                   f'{value!r} ({type(value).__name__})')
            has = ('' if orig is _MISSING else
                   f' (the config has {key}={orig!r})')
            raise EVLabError(f'--cfg-options {key}={value}: expected '
                             f'{expected}, got {got}{has}')


#: Top-level keys that mmengine's Runner (``Runner.from_cfg``,
#: ``FlexibleRunner``), the registries and the tools read.
RUNNER_KEYS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'model_wrapper_cfg', 'compile', 'strategy', 'runner_type',
    'custom_imports'
})
#: Other top-level names of OpenMMLab and EVLab configs (never warned).
CONFIG_KEYS = frozenset({
    'dataset_type', 'data_root', 'backend_args', 'file_client_args',
    'train_pipeline', 'test_pipeline', 'val_pipeline', 'tta_pipeline',
    'tta_model', 'vis_backends', 'metainfo', 'img_norm_cfg', 'norm_cfg',
    'crop_size', 'img_scale', 'num_classes'
})


def unknown_key_warnings(cfg: Config, path: str) -> List[str]:
    """``warning:`` lines for top-level keys that look misspelt.

    A config's top level mixes the keys the Runner reads with helper
    variables (``img_scale``, ``num_classes``, ``teacher_ckpt``, ...), which
    may have any name, so an unknown key alone is no mistake. It is taken
    for a misspelt Runner key, which the Runner would silently ignore, only
    when it is close to one (``difflib`` ratio >= 0.8: ``modle``,
    ``train_cfgs``, ``optim_wraper``); names starting with ``_`` and the
    usual helper names (:data:`CONFIG_KEYS`) never warn.
    """
    lines = []
    for key in cfg.keys():
        if key.startswith('_') or key in RUNNER_KEYS or key in CONFIG_KEYS:
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.8)
        if close:
            lines.append(f'warning: {path}: top-level key `{key}` is read by '
                         f'nothing and is ignored; did you mean '
                         f'`{close[0]}`?')
    return lines


def _iter_datasets(cfg: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield (config key, dataset dict) through dataset wrappers."""
    if not isinstance(cfg, dict):
        return
    if 'dataset' in cfg:
        yield from _iter_datasets(cfg['dataset'], key + '.dataset')
    elif 'datasets' in cfg:
        for i, sub in enumerate(cfg['datasets']):
            yield from _iter_datasets(sub, f'{key}.datasets.{i}')
    else:
        yield key, cfg


def check_datasets(cfg: Config, splits: List[str]) -> None:
    """Fail early, and clearly, when a dataset's files are missing or wrong.

    Checks that each dataset folder and annotation file exists and scans
    the ``<image path> <class index>`` annotation files of ImageNet-style
    datasets against the model's classes
    (:func:`~projects.common.data_check.check_label_file`). The datasets
    are remembered, so that a later data error (an image missing on disk, a
    truncated JSON file) names its annotation file and config key.

    Args:
        cfg (Config): The run's config.
        splits (list[str]): Dataloader keys to check, e.g.
            ``['train_dataloader', 'val_dataloader']``.
    """
    infos = []
    for split in splits:
        loader = cfg.get(split)
        if not loader or 'dataset' not in loader:
            continue
        for key, ds in _iter_datasets(loader['dataset'],
                                      f'{split}.dataset'):
            root = ds.get('data_root') or ''
            if root and '://' not in root and not osp.isdir(root):
                raise EVLabError(
                    f'dataset folder {root!r} ({key}.data_root) does not '
                    f'exist. {missing_data_hint(cfg, ds)}')
            ann = ds.get('ann_file') or ''
            if ann and '://' not in ann:
                path = ann if osp.isabs(ann) else osp.join(root, ann)
                if not osp.exists(path):
                    raise EVLabError(
                        f'annotation file {path!r} ({key}.ann_file) does not '
                        f'exist. {missing_data_hint(cfg, ds)}')
            infos.append(data_check.dataset_info(key, ds))
    data_check.remember(infos)
    num_classes = data_check.model_num_classes(cfg.get('model'))
    scanned = set()
    for info in infos:
        if info.type in data_check.LABEL_LIST_TYPES and info.ann_file and \
                info.ann_file not in scanned:
            scanned.add(info.ann_file)
            data_check.check_label_file(info, num_classes)


_WORKER_RE = re.compile(r'Caught (\w+) in DataLoader worker process')


def explain(exc: BaseException) -> Optional[str]:
    """A one-line explanation for errors caused by the user's input.

    Returns None for anything else, which is then raised as usual.
    """
    if isinstance(exc, EVLabError):
        return str(exc)
    try:
        # a truncated JSON annotation file, a dataset with no images
        message = data_check.explain_data_error(exc)
    except Exception:  # noqa: BLE001 (never hide the original error)
        message = None
    if message is not None:
        return message
    text = str(exc.args[0]) if exc.args else str(exc)
    if _WORKER_RE.search(text):
        # the worker's traceback is in the message; its last line is the
        # original error
        text = text.strip().splitlines()[-1]
    if 'failed to load image' in text or 'cannot identify image' in text:
        path = text.split(':', 1)[-1].strip()
        for prefix in ('failed to load image', 'cannot identify image file'):
            path = path.replace(prefix + ':', '').strip()
        return (f'an image could not be read: {path} is missing, empty or '
                f'corrupt. Replace or remove it (and its annotation), or '
                f'regenerate the toy data with `python '
                f'tools/misc/make_toy_data.py --force`.')
    if isinstance(exc, KeyError) and 'registry' in text:
        return (f'unknown `type` in the config: {text.split(". ")[0]}. '
                f'Check its spelling and that `custom_imports` imports the '
                f'module that registers it.')
    if isinstance(exc, FileNotFoundError):
        # args[0] of an OSError is its errno; the path is `filename`, or,
        # from a dataloader worker, in the text
        path = data_check.missing_file(exc, text)
        if path is not None:
            return data_check.explain_missing_file(path)
        return f'file not found: {getattr(exc, "strerror", None) or text}'
    return None


def cli(main: Callable[..., None]) -> Callable[..., None]:
    """Run ``main`` and print input errors as ``error: ...`` (exit code 2).

    Set ``EVLAB_DEBUG=1`` to get the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> None:
        try:
            main(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 (re-raised unless known)
            message = explain(exc)
            if message is None or os.environ.get(DEBUG_ENV):
                raise
            print(f'error: {message}', file=sys.stderr)
            print(f'(set {DEBUG_ENV}=1 for the full traceback)',
                  file=sys.stderr)
            sys.exit(2)

    return wrapper


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mixed precision (``--amp``)."""
    import torch
    if not torch.cuda.is_available():
        raise EVLabError('--amp needs a GPU; this machine has none visible. '
                         'Run without --amp on the CPU.')
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None:
        raise EVLabError('--amp: the config has no `optim_wrapper`')
    if wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')


#: How each host's visualization hook is told to draw and where to save:
#: (flag that turns drawing on, key of the output folder or None when the
#: folder is the visualizer's ``save_dir``).
_VIS_HOOKS = {
    'DetVisualizationHook': ('draw', 'test_out_dir'),
    'SegVisualizationHook': ('draw', None),
    'VisualizationHook': ('enable', 'out_dir'),
}


#: Metrics that draw their own results (a re-ID ranked list needs the
#: whole gallery, which no per-batch hook sees): ``--show-dir`` sets their
#: ``show_dir`` instead of turning a visualization hook on.
_SHOW_DIR_METRICS = frozenset({'QueryGalleryReIDMetric'})


def _drawing_metrics(cfg: Config) -> List[dict]:
    evaluator = cfg.get('test_evaluator')
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [
        evaluator]
    return [m for m in metrics if isinstance(m, dict) and str(
        m.get('type', '')).split('.')[-1] in _SHOW_DIR_METRICS]


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Save test images with predictions drawn into ``show_dir``."""
    drawing = _drawing_metrics(cfg)
    if drawing:
        for metric in drawing:
            metric['show_dir'] = osp.abspath(show_dir)
        return
    hook = cfg.get('default_hooks', {}).get('visualization')
    kind = str(hook.get('type', '')).split('.')[-1] if hook else ''
    if kind not in _VIS_HOOKS:
        raise EVLabError(
            f'--show-dir needs default_hooks.visualization to be one of '
            f'{sorted(_VIS_HOOKS)}, got {kind or "none"!r}')
    flag, out_key = _VIS_HOOKS[kind]
    hook[flag] = True
    if kind != 'DetVisualizationHook':
        # mmseg's and mmpretrain's hooks draw only every `interval`-th image
        hook['interval'] = 1
    if out_key is None:
        cfg.visualizer['save_dir'] = show_dir
    else:
        hook[out_key] = osp.abspath(show_dir)


def set_work_dir(cfg: Config, config_path: str,
                 work_dir: Optional[str]) -> None:
    """``--work-dir``, else the config's, else ``./work_dirs/<name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config):
    """The config's runner: ``runner_type`` if given, else mmengine's."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)

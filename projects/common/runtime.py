# Copyright (c) EVLab contributors.
"""What ``tools/train.py`` and ``tools/test.py`` share.

Config loading with clear errors, the dataset pre-flight check, and
:func:`cli` which turns mistakes in the user's input into one readable line
instead of a deep traceback. No host library is imported here: the config's
``default_scope`` decides whether mmdet, mmseg or mmpretrain builds the run.
"""
import functools
import os
import os.path as osp
import re
import sys
from typing import Callable, Iterator, List, Optional, Tuple

from mmengine.config import Config

from .errors import EVLabError

DEBUG_ENV = 'EVLAB_DEBUG'
TOY_HINT = ('For the toy datasets run `python tools/misc/make_toy_data.py` '
            '(or `make data`); for real datasets see docs/get_started.md.')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config file, naming the file in every error.

    Args:
        path (str): Path of the config file.
        cfg_options (dict, optional): ``--cfg-options`` to merge.
            Defaults to None.
    """
    if not osp.isfile(path):
        raise EVLabError(f'config file {path!r} does not exist')
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, NameError, TypeError, KeyError, ValueError,
            ImportError, FileNotFoundError) as e:
        raise EVLabError(
            f'config file {path!r} could not be loaded: '
            f'{type(e).__name__}: {e}') from e
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('default_scope') is None:
        raise EVLabError(
            f'config file {path!r} has no `default_scope`; inherit a base '
            f'config of mmdet, mmseg or mmpretrain or set it, e.g. '
            f"default_scope = 'mmdet'")
    return cfg


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
    """Fail early, and clearly, when a dataset folder or file is missing.

    Args:
        cfg (Config): The run's config.
        splits (list[str]): Dataloader keys to check, e.g.
            ``['train_dataloader', 'val_dataloader']``.
    """
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
                    f'exist. {TOY_HINT}')
            ann = ds.get('ann_file') or ''
            if ann and '://' not in ann:
                path = ann if osp.isabs(ann) else osp.join(root, ann)
                if not osp.exists(path):
                    raise EVLabError(
                        f'annotation file {path!r} ({key}.ann_file) does not '
                        f'exist. {TOY_HINT}')


_WORKER_RE = re.compile(r'Caught (\w+) in DataLoader worker process')


def explain(exc: BaseException) -> Optional[str]:
    """A one-line explanation for errors caused by the user's input.

    Returns None for anything else, which is then raised as usual.
    """
    if isinstance(exc, EVLabError):
        return str(exc)
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
        return f'file not found: {text}'
    return None


def cli(main: Callable[[], None]) -> Callable[[], None]:
    """Run ``main`` and print input errors as ``error: ...`` (exit code 2).

    Set ``EVLAB_DEBUG=1`` to get the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper() -> None:
        try:
            main()
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


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Save test images with predictions drawn into ``show_dir``."""
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

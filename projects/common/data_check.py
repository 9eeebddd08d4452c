# Copyright (c) EVLab contributors.
"""Dataset checks of the pre-flight, and the dataset behind a data error.

Two halves, both used through :mod:`projects.common.runtime`:

- before the run, :func:`describe_datasets` reads where each dataset of the
  config keeps its annotation file and images, and :func:`check_label_file`
  scans the text annotation files of ImageNet-style datasets (``<image
  path> <class index>`` per line) once: a malformed line or a label beyond
  the model's classes is reported with the file and the line, instead of an
  ``IndexError`` deep in the loss after the first batch. 1.28 M lines (the
  ImageNet train list) take about a second.
- during the run, :func:`explain_data_error` names the annotation file and
  the config key behind an error: a JSON annotation file that does not
  parse, a dataset that ends up with no images, an image listed in the
  annotations but missing on disk. The dataset is found in the traceback
  (the dataset object that was being built) or, for errors raised in a
  dataloader worker whose traceback is only text, from the image path and
  the datasets :func:`remember` recorded at the pre-flight.

Nothing here reads a JSON annotation file ahead of the run: the dataset
parses it once anyway, and a 450 MB COCO file is not worth parsing twice.
"""
import json
import os.path as osp
import re
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .errors import EVLabError

#: Dataset types whose annotation file is ``<image path> <class index>``
#: per line (mmpretrain's ``CustomDataset`` and its ImageNet subclasses).
LABEL_LIST_TYPES = frozenset({'CustomDataset', 'ImageNet', 'ImageNet21k'})


@dataclass
class DatasetInfo:
    """Where one dataset of the config keeps its data.

    Args:
        key (str): Its config key, e.g. ``'val_dataloader.dataset'``.
        type (str): Its ``type``, without a scope prefix.
        ann_file (str): Absolute path of the annotation file, or ''.
        folders (dict): ``data_prefix`` entries (``'img'``, ...) as absolute
            folders.
    """
    key: str
    type: str
    ann_file: str = ''
    folders: Dict[str, str] = field(default_factory=dict)


def _abs(path: str) -> str:
    return osp.normpath(osp.abspath(osp.expanduser(path)))


def _is_local(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def dataset_info(key: str, ds: dict) -> DatasetInfo:
    """The :class:`DatasetInfo` of the dataset config ``ds`` at ``key``."""
    root = ds.get('data_root') or ''
    root = root if _is_local(root) else ''

    def join(path: str) -> str:
        return _abs(path if osp.isabs(path) else osp.join(root, path))

    ann = ds.get('ann_file') or ''
    prefix = ds.get('data_prefix')
    if isinstance(prefix, dict):
        folders = {k: join(v) for k, v in prefix.items() if _is_local(v)}
    elif _is_local(prefix) or (not prefix and root):
        folders = {'img': join(prefix or '')}
    else:
        folders = {}
    return DatasetInfo(key=key, type=str(ds.get('type', '')).split('.')[-1],
                       ann_file=join(ann) if _is_local(ann) else '',
                       folders=folders)


#: The datasets of this run as the pre-flight saw them (see
#: :func:`remember`); read by :func:`explain_data_error`.
_RUN_DATASETS: List[DatasetInfo] = []


def remember(infos: List[DatasetInfo]) -> None:
    """Record the run's datasets so that later errors can name them."""
    _RUN_DATASETS[:] = infos


def _by_ann_file(path: str) -> Optional[DatasetInfo]:
    path = _abs(path)
    return next((d for d in _RUN_DATASETS if d.ann_file == path), None)


def _by_member(path: str) -> Optional[Tuple[DatasetInfo, str]]:
    """The dataset (and its ``data_prefix`` name) with ``path`` inside one
    of its folders; the deepest folder wins."""
    path = _abs(path)
    best = None
    for info in _RUN_DATASETS:
        for name, folder in info.folders.items():
            if path.startswith(folder.rstrip(osp.sep) + osp.sep) and (
                    best is None or len(folder) > len(best[2])):
                best = (info, name, folder)
    return best[:2] if best else None


# -- the pre-flight ----------------------------------------------------------
def model_num_classes(model: Any) -> Optional[Tuple[int, str]]:
    """``(num_classes, config key)`` of a classifier config's head.

    A distiller's head is its student's (``model.student.head``); the
    teacher is not trained on the labels' index space of the run.
    """
    key = 'model'
    while isinstance(model, dict):
        head = model.get('head')
        if isinstance(head, dict) and isinstance(head.get('num_classes'),
                                                 int):
            return head['num_classes'], f'{key}.head.num_classes'
        model, key = model.get('student'), key + '.student'
    return None


def check_label_file(info: DatasetInfo,
                     num_classes: Optional[Tuple[int, str]]) -> int:
    """Check an ``<image path> <class index>`` annotation file.

    Every line is split as mmpretrain's ``CustomDataset`` splits it (on the
    last space); the label must be an integer in ``[0, num_classes)``.

    Args:
        info (DatasetInfo): The dataset; its ``ann_file`` is read.
        num_classes (tuple, optional): ``(count, config key)`` from
            :func:`model_num_classes`; None skips the range check.

    Returns:
        int: The number of images listed.

    Raises:
        EVLabError: A malformed line, a label out of range or no line at
            all; the message names the file, the line and the config key.
    """
    count = 0
    where = f'annotation file {info.ann_file!r} ({info.key})'
    try:
        with open(info.ann_file, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                parts = line.strip().rsplit(' ', 1)
                try:
                    label = int(parts[1]) if len(parts) == 2 else None
                except ValueError:
                    label = None
                if label is None:
                    raise EVLabError(
                        f'{where}, line {lineno}: expected "<image path> '
                        f'<class index>", got {line.rstrip(chr(10))!r}; fix '
                        f'or remove the line (a file cut short by a copy '
                        f'ends like this)')
                if num_classes is not None and not \
                        0 <= label < num_classes[0]:
                    n, key = num_classes
                    raise EVLabError(
                        f'{where}, line {lineno}: label {label} is out of '
                        f'range for the model\'s {n} classes ({key}={n}, so '
                        f'labels are 0..{n - 1}); fix the label or set '
                        f'{key}')
                count += 1
    except UnicodeDecodeError as e:
        raise EVLabError(f'{where} is not a text file ({e.reason} at byte '
                         f'{e.start}); is it the right file?') from None
    if count == 0:
        raise EVLabError(f'{info.key} has no images: its annotation file '
                         f'{info.ann_file!r} is empty')
    return count


# -- errors during the run ---------------------------------------------------
def _frames(exc: BaseException) -> List[FrameType]:
    """The traceback's frames, innermost first."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames[::-1]


def _datasets_in(frames: List[FrameType]) -> Iterator[Tuple[FrameType, Any]]:
    """``(frame, dataset)`` for frames that run a method of an mmengine
    dataset, innermost first."""
    from mmengine.dataset import BaseDataset
    for frame in frames:
        obj = frame.f_locals.get('self')
        if isinstance(obj, BaseDataset):
            yield frame, obj


def _json_path(frames: List[FrameType]) -> Tuple[Optional[str], bool]:
    """The JSON file a decode error came from, and whether it is known to
    be an annotation file."""
    for frame in frames:
        local = frame.f_locals
        fp = local.get('fp')  # json.load(fp)
        if isinstance(getattr(fp, 'name', None), str):
            return fp.name, False
        for name in ('annotation_file', 'ann_file'):
            if _is_local(local.get(name)):
                return local[name], True
    for _, ds in _datasets_in(frames):
        if _is_local(getattr(ds, 'ann_file', None)):
            return ds.ann_file, True
    return None, False


def _explain_json(exc: json.JSONDecodeError,
                  frames: List[FrameType]) -> str:
    path, is_ann = _json_path(frames)
    what = 'annotation file' if is_ann else 'JSON file'
    if path is None:
        return (f'a JSON file is truncated or corrupt ({exc.msg}: line '
                f'{exc.lineno} column {exc.colno})')
    info = _by_ann_file(path)
    if info is not None:
        what, path = 'annotation file', f'{info.ann_file!r} ({info.key})'
    else:
        path = repr(path)
    state = 'is empty' if not exc.doc.strip() else 'is truncated or corrupt'
    return (f'{what} {path} {state}: it is not valid JSON ({exc.msg}: line '
            f'{exc.lineno} column {exc.colno}). Restore it from the '
            f'dataset\'s download, or regenerate the toy data with `python '
            f'tools/misc/make_toy_data.py --force`.')


def _empty_dataset(frames: List[FrameType]) -> Optional[str]:
    """The message for a dataset that was built with no images, if the
    error came from building one (mmengine fails with "need at least one
    array to concatenate" when it serialises an empty list)."""
    names = {frame.f_code.co_name for frame in frames}
    for frame, ds in _datasets_in(frames):
        if frame.f_code.co_name != 'full_init' or 'load_data_list' in names:
            continue
        if len(getattr(ds, 'data_list', None) or []) != 0:
            return None
        ann = ds.ann_file if _is_local(ds.ann_file) else ''
        info = _by_ann_file(ann) if ann else None
        name = info.key if info is not None else type(ds).__name__
        if ann:
            ann = info.ann_file if info is not None else ann
            where = f'its annotation file {ann!r} lists none'
        else:
            where = f'none found in {ds.data_prefix}'
        return (f'{name} has no images: {where}, or none are left after '
                f'`filter_cfg` / `indices`. Check the annotation file and '
                f'the dataset settings.')
    return None


_MISSING_RE = re.compile(r"No such file or directory: '([^']+)'")


def missing_file(exc: BaseException, text: str) -> Optional[str]:
    """The path of a missing file behind ``exc`` (or its worker text)."""
    filename = getattr(exc, 'filename', None)
    if isinstance(filename, str):
        return filename
    match = _MISSING_RE.search(text)
    return match.group(1) if match else None


def explain_missing_file(path: str) -> str:
    """``error:`` text for a file that does not exist, naming the dataset
    whose annotations list it when the path is inside a dataset folder."""
    found = _by_member(path)
    if found is None:
        return f'file not found: {path}'
    info, name = found
    what = 'image' if 'img' in name else f'file ({name} of data_prefix)'
    if info.ann_file:
        return (f'{what} {path!r} does not exist, but annotation file '
                f'{info.ann_file!r} ({info.key}) lists it. Restore the '
                f'file, or remove its entry from the annotation file.')
    return (f'{what} {path!r} of {info.key} does not exist. Restore the '
            f'file, or remove its image and annotation.')


def explain_data_error(exc: BaseException) -> Optional[str]:
    """A message naming the dataset behind ``exc``, or None."""
    frames = _frames(exc)
    if isinstance(exc, json.JSONDecodeError):
        return _explain_json(exc, frames)
    return _empty_dataset(frames)

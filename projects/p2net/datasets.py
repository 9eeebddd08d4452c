# Copyright (c) EVLab contributors.
"""Market-1501 and DukeMTMC-reID in their released layouts.

``mode='train'`` reads ``bounding_box_train`` with the person ids relabelled
``0..n-1`` in sorted order (``gt_label``). ``mode='test'`` yields the
queries, then the gallery (``bounding_box_test``), each item with ``pid``,
``camid`` (0-based) and ``is_query``; the evaluation
(:class:`~projects.p2net.metric.QueryGalleryReIDMetric`) needs nothing
else, so the order across ranks of a distributed test does not matter.

Market-1501 rules (spec 2.4): id ``-1`` is junk (ignored by the protocol;
dropped at load by default, torchreid's 15,913-image gallery) and ``0000``
is a distractor (kept: a negative for every query). Both occur only in the
test folders; if either appears in the train folder it is dropped and the
count logged.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

from ..common.errors import EVLabError

MODES = ('train', 'test')


@DATASETS.register_module()
class Market1501(BaseDataset):
    """Market-1501 (Zheng et al., ICCV 2015) for re-ID training and the
    query/gallery evaluation.

    File names are ``PPPP_cCsS_FFFFFF_BB.jpg`` (person, camera 1-6,
    sequence, frame, box); a ``.jpg`` that does not match is an error that
    names it, other files are ignored.

    Args:
        data_root (str): The folder holding the subsets
            (``Market-1501-v15.09.15``).
        mode (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        parsing_root (str, optional): Folder of part-parsing PNGs mirroring
            the subsets (``<parsing_root>/<subset>/<stem>.png``), relative
            to ``data_root`` unless absolute; each item then carries
            ``seg_map_path`` for ``LoadPartMap``. Defaults to None.
        subsets (dict, optional): Folder names of ``train``, ``query`` and
            ``gallery``. Defaults to Market's.
        drop_junk (bool): Leave the junk (id -1) gallery images out at load
            time. The metric ignores junk either way. Defaults to True.
        pipeline (list): The pipeline. Defaults to ``()``.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    #: ``(pid, camera, rest)`` from a file name
    PATTERN = re.compile(r'^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$')
    NUM_CAMERAS = 6
    DEFAULT_SUBSETS = dict(train='bounding_box_train', query='query',
                           gallery='bounding_box_test')
    NAME = 'Market-1501'

    def __init__(self,
                 data_root: str,
                 mode: str = 'train',
                 parsing_root: Optional[str] = None,
                 subsets: Optional[Dict[str, str]] = None,
                 drop_junk: bool = True,
                 pipeline: Sequence = (),
                 **kwargs):
        if mode not in MODES:
            raise EVLabError(f'{type(self).__name__}: mode must be one of '
                             f'{MODES}, got {mode!r}')
        self.mode = mode
        self.subsets = dict(self.DEFAULT_SUBSETS, **(subsets or {}))
        self.drop_junk = drop_junk
        if parsing_root is not None and not osp.isabs(parsing_root):
            parsing_root = osp.join(data_root, parsing_root)
        self.parsing_root = parsing_root
        #: what loading left out: junk / distractors outside the gallery
        self.dropped: Dict[str, int] = {}
        super().__init__(data_root=data_root, pipeline=list(pipeline),
                         serialize_data=False, **kwargs)

    # -- parsing ------------------------------------------------------------
    def parse_name(self, name: str, folder: str):
        """``(pid, camid)`` of an image file name (camid is 0-based).

        Raises:
            EVLabError: The name does not follow the dataset's pattern.
        """
        m = self.PATTERN.match(name)
        if m is None:
            raise EVLabError(
                f'{osp.join(folder, name)!r} does not follow the '
                f'{self.NAME} file name pattern {self.PATTERN.pattern}')
        pid, cam = int(m.group(1)), int(m.group(2))
        if not 1 <= cam <= self.NUM_CAMERAS:
            raise EVLabError(
                f'{osp.join(folder, name)!r}: camera {cam} is outside '
                f'1..{self.NUM_CAMERAS} of {self.NAME}')
        return pid, cam - 1

    def _read_subset(self, key: str) -> List[dict]:
        sub = self.subsets[key]
        folder = osp.normpath(osp.join(self.data_root, sub))
        if not osp.isdir(folder):
            raise EVLabError(
                f'{self.NAME} subset folder {folder!r} ({key}) does not '
                f'exist: {self.data_root!r} must hold '
                f'{", ".join(sorted(set(self.subsets.values())))}')
        items = []
        for name in sorted(os.listdir(folder)):
            if not name.endswith('.jpg'):
                continue
            pid, camid = self.parse_name(name, folder)
            item = dict(img_path=osp.join(folder, name), pid=pid,
                        camid=camid, is_query=key == 'query')
            if self.parsing_root is not None:
                item['seg_map_path'] = osp.join(
                    self.parsing_root, sub, name[:-4] + '.png')
            items.append(item)
        if not items:
            raise EVLabError(f'{self.NAME} subset folder {folder!r} ({key}) '
                             f'holds no .jpg images')
        return items

    def _drop(self, items: List[dict], key: str, pids) -> List[dict]:
        kept = [it for it in items if it['pid'] not in pids]
        if len(kept) < len(items):
            what = '/'.join(str(p) for p in sorted(pids))
            self.dropped[f'{key}:{what}'] = len(items) - len(kept)
            MMLogger.get_current_instance().warning(
                f'{self.NAME} {key}: dropped {len(items) - len(kept)} '
                f'images of id {what}, which the protocol does not train '
                f'or query with')
        return kept

    def load_data_list(self) -> List[dict]:
        if self.mode == 'train':
            items = self._drop(self._read_subset('train'), 'train', {-1, 0})
            pids = sorted({it['pid'] for it in items})
            label = {p: i for i, p in enumerate(pids)}
            for it in items:
                it['gt_label'] = label[it['pid']]
            self._metainfo['num_ids'] = len(pids)
            MMLogger.get_current_instance().info(
                f'{self.NAME} train: {len(items)} images of {len(pids)} ids')
            return items
        query = self._drop(self._read_subset('query'), 'query', {-1, 0})
        gallery = self._read_subset('gallery')
        if self.drop_junk:
            before = len(gallery)
            gallery = [it for it in gallery if it['pid'] != -1]
            self.dropped['gallery:-1'] = before - len(gallery)
        self._metainfo.update(num_query=len(query),
                              num_gallery=len(gallery))
        MMLogger.get_current_instance().info(
            f'{self.NAME} test: {len(query)} queries of '
            f'{len({q["pid"] for q in query})} ids, {len(gallery)} gallery '
            f'images ({self.dropped.get("gallery:-1", 0)} junk dropped, '
            f'{sum(g["pid"] == 0 for g in gallery)} distractors kept)')
        return query + gallery


@DATASETS.register_module()
class DukeMTMCReID(Market1501):
    """DukeMTMC-reID (Zheng et al., ICCV 2017) in its released layout:
    ``PPPP_cC_fFFFFFFF.jpg``, 8 cameras, same folders and protocol as
    :class:`Market1501` (it has neither junk nor distractor ids).
    """

    PATTERN = re.compile(r'^(\d{4})_c(\d)_f(\d{7})\.jpg$')
    NUM_CAMERAS = 8
    NAME = 'DukeMTMC-reID'

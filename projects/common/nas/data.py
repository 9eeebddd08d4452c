# Copyright (c) EVLab contributors.
"""The held-out search split: a few training images per class, kept out
of supernet training and used to score subnets (never the val set, which
is reserved for retrained models; hournas spec 2.5)."""
import random
from typing import Dict, List, Union

from mmengine.dataset import BaseDataset
from mmengine.registry import DATASETS
from torch.utils.data import Dataset


def heldout_indices(dataset: BaseDataset, per_class: int,
                    seed: int = 0) -> List[int]:
    """``per_class`` indices of each class of ``dataset`` (by
    ``get_cat_ids``), drawn with ``random.Random(seed)``, sorted."""
    by_class: Dict[int, List[int]] = {}
    for i in range(len(dataset)):
        for c in dataset.get_cat_ids(i):
            by_class.setdefault(int(c), []).append(i)
            break
    rng = random.Random(seed)
    picked = []
    for c in sorted(by_class):
        idx = by_class[c]
        if len(idx) <= per_class:
            raise ValueError(
                f'held-out split: class {c} has {len(idx)} images, not '
                f'more than per_class={per_class}; lower per_class')
        picked += rng.sample(idx, per_class)
    return sorted(picked)


@DATASETS.register_module()
class HeldOutSplit(Dataset):
    """One part of a training set split into a supernet-training part and
    a held-out part of ``per_class`` images per class.

    Both parts are drawn by the same rule, so a config that uses
    ``part='train'`` for supernet training and ``part='heldout'`` (with the
    test pipeline) for the search gets disjoint sets.

    Args:
        dataset (dict | BaseDataset): The training set.
        part (str): ``'train'`` (the rest) or ``'heldout'``.
        per_class (int): Held-out images per class. Defaults to 10.
        seed (int): Seed of the draw. Defaults to 0.
    """

    def __init__(self, dataset: Union[dict, BaseDataset],
                 part: str = 'train', per_class: int = 10,
                 seed: int = 0) -> None:
        if part not in ('train', 'heldout'):
            raise ValueError(f"part must be 'train' or 'heldout', got "
                             f'{part!r}')
        self.dataset = DATASETS.build(dataset) if isinstance(
            dataset, dict) else dataset
        held = heldout_indices(self.dataset, per_class, seed)
        if part == 'heldout':
            self.indices = held
        else:
            held_set = set(held)
            self.indices = [i for i in range(len(self.dataset))
                            if i not in held_set]
        self.part = part

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def get_cat_ids(self, idx: int) -> List[int]:
        return self.dataset.get_cat_ids(self.indices[idx])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset[self.indices[idx]]


__all__ = ['HeldOutSplit', 'heldout_indices']

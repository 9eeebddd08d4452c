# Copyright (c) EVLab contributors.
"""An identity-balanced P x K sampler for re-ID training (the batch-hard
triplet loss needs several images of each id in a batch)."""
import math
from typing import Iterator, List, Optional

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler


@DATA_SAMPLERS.register_module()
class PKSampler(Sampler):
    """Batches of P identities x K images (``batch_size = P * K``).

    Every epoch, each identity gives ``ceil(n_id / K)`` groups of K of its
    images (drawn with replacement when it has fewer than K); the groups
    are shuffled with a seeded generator and dealt to the ranks group by
    group, so a rank's consecutive groups make its batches. The same seed
    and epoch give the same order.

    Args:
        dataset: A dataset whose items carry ``gt_label`` (the training
            identity), e.g. ``Market1501(mode='train')``.
        num_instances (int): K, images per identity in a batch.
            Defaults to 4.
        seed (int, optional): Defaults to a seed shared by the ranks.
    """

    def __init__(self, dataset, num_instances: int = 4,
                 seed: Optional[int] = None):
        if num_instances < 1:
            raise ValueError(f'num_instances must be >= 1, got '
                             f'{num_instances}')
        self.rank, self.world_size = get_dist_info()
        self.num_instances = num_instances
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        labels = [dataset.get_data_info(i)['gt_label']
                  for i in range(len(dataset))]
        self.index_by_id = {}
        for i, label in enumerate(labels):
            self.index_by_id.setdefault(int(label), []).append(i)
        groups = sum(math.ceil(len(v) / num_instances)
                     for v in self.index_by_id.values())
        self.groups_per_rank = math.ceil(groups / self.world_size)

    def _groups(self) -> List[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = []
        for pid in sorted(self.index_by_id):
            idx = np.array(self.index_by_id[pid])
            k = self.num_instances
            n = math.ceil(len(idx) / k) * k
            if len(idx) < k:
                picks = rng.choice(idx, size=k, replace=True)
            else:
                # a permutation, topped up from the same id
                picks = np.concatenate(
                    [rng.permutation(idx),
                     rng.choice(idx, size=n - len(idx), replace=False)])
            groups += [picks[j:j + k].tolist() for j in range(0, n, k)]
        order = rng.permutation(len(groups))
        groups = [groups[j] for j in order]
        # pad so that every rank gets the same number of groups
        total = self.groups_per_rank * self.world_size
        groups += groups[:total - len(groups)]
        return groups

    def __iter__(self) -> Iterator[int]:
        groups = self._groups()[self.rank::self.world_size]
        for g in groups:
            yield from g

    def __len__(self) -> int:
        return self.groups_per_rank * self.num_instances

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (called by mmengine's loops)."""
        self.epoch = epoch

# Copyright (c) EVLab contributors.
"""One intra-op thread for these tests: their tensors are tiny, and on a
shared 2-core machine two OpenMP threads per op wait on each other."""
import pytest
import torch


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

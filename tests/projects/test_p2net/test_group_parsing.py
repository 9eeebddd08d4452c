# Copyright (c) EVLab contributors.
"""tools/misc/p2net_group_parsing.py: LIP labels to P2Net's 5 groups."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def load_tool():
    path = osp.join(ROOT, 'tools', 'misc', 'p2net_group_parsing.py')
    spec = importlib.util.spec_from_file_location('p2net_group_parsing',
                                                  path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_groups_every_lip_label_and_mirrors_the_tree(tmp_path):
    tool = load_tool()
    assert sorted(tool.LIP_TO_5) == list(range(20))
    assert set(tool.LIP_TO_5.values()) == set(range(5))
    src = tmp_path / 'lip' / 'query'
    os.makedirs(src)
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    Image.fromarray(labels).save(src / '0001_c1s1_000001_00.png')
    n = tool.convert(str(tmp_path / 'lip'), str(tmp_path / 'parts'),
                     tool.LIP_TO_5)
    assert n == 1
    out = np.asarray(Image.open(tmp_path / 'parts' / 'query' /
                                '0001_c1s1_000001_00.png'))
    want = np.array([tool.LIP_TO_5[int(v)] for v in labels.ravel()])
    assert (out.ravel() == want).all()
    assert out[0, 0] == 0 and out[3, 4] == 4  # background, right shoe


def test_unknown_label_is_named(tmp_path):
    tool = load_tool()
    Image.fromarray(np.full((2, 2), 21, np.uint8)).save(tmp_path / 'a.png')
    with pytest.raises(ValueError, match=r'a\.png.*\[21\]'):
        tool.convert(str(tmp_path), str(tmp_path / 'out'), tool.LIP_TO_5)

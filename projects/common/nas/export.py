# Copyright (c) EVLab contributors.
"""Export of a searched architecture: a genotype JSON and a plain config
that trains the network from scratch through ``tools/train.py``."""
import json
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.config import Config

from .io import atomic_write_text


def save_json(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a kill leaves the old
    file or the new one, never half of one)."""
    atomic_write_text(path, json.dumps(data, indent=2) + '\n')


def save_genotype(path: str, genotype: Any, **meta: Any) -> None:
    """Write ``{"genotype": genotype, **meta}`` to ``path``."""
    save_json(path, dict(genotype=genotype, **meta))


def load_genotype(path: str) -> Dict[str, Any]:
    """Read a genotype JSON; errors name the file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'genotype file {path!r} does not exist')
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path!r} is not JSON: {e}') from None
    if not isinstance(data, dict) or 'genotype' not in data:
        raise ValueError(f'{path!r} has no "genotype" key')
    return data


def _set_key(cfg: Config, key: str, value: Any) -> None:
    node = cfg
    parts = key.split('.')
    if len(parts) == 1:
        cfg[key] = value
        return
    for part in parts[:-1]:
        if part not in node:
            raise KeyError(f'export: the template has no {key!r} '
                           f'({part!r} missing)')
        node = node[part]
    node[parts[-1]] = value


def export_config(template: str, out_path: str,
                  updates: Dict[str, Any],
                  header: Optional[str] = None) -> str:
    """Write a standalone config: ``template`` (a config file) with the
    dotted ``updates`` applied (e.g. ``{'model.backbone.genotype':
    [...]}``), every ``_base_`` resolved, so the file trains on its own.

    Returns:
        str: ``out_path``.
    """
    cfg = Config.fromfile(template)
    for key, value in updates.items():
        _set_key(cfg, key, value)
    text = cfg.pretty_text
    lines = [f'# Exported by EVLab from {osp.relpath(template)}.']
    if header:
        lines += [f'# {line}' for line in header.splitlines()]
    atomic_write_text(out_path, '\n'.join(lines) + '\n' + text + '\n')
    return out_path

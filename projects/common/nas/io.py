# Copyright (c) EVLab contributors.
"""Atomic text files: a kill leaves the old file or the new one, never half
of one (search states, genotypes, exported configs)."""
import os


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same
    folder (created if missing) and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # the same folder keeps os.replace on one file system; the pid keeps
    # two writers (e.g. two ranks) apart
    tmp = os.path.join(folder, f'.{os.path.basename(path)}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

# Copyright (c) EVLab contributors.
"""Safe checkpoint loading and crash-safe checkpoint writing.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
0.10.7 checkpoints carry mmengine and numpy objects (the message hub's
``HistoryBuffer``, numpy scalars, ...), so ``--resume`` fails out of the
box. Turning ``weights_only`` off would let any checkpoint run arbitrary
code. EVLab instead keeps the restricted loader and allowlists exactly the
types its own checkpoints contain (:data:`SAFE_GLOBALS`). A checkpoint that
holds any other pickled object is refused with a message naming the type;
a user who trusts the file adds the type through the environment variable
``EVLAB_TRUSTED_CHECKPOINT_TYPES`` (comma-separated ``module.Name``).

Writes go through :class:`AtomicLocalBackend`: the bytes land in a
temporary file in the same folder, are flushed to disk and then renamed over
the target, so a crash in the middle of a write never replaces the previous
good checkpoint.

:func:`install` wires both into mmengine. The tools call it; call it
yourself when you drive a ``Runner`` from your own script.
"""
import importlib
import os
import os.path as osp
import pickle
import re
import tempfile
import zipfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.backends import backends as _registered_backends
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import EVLabError

#: Name under which :class:`AtomicLocalBackend` is registered in mmengine.
ATOMIC_BACKEND = 'evlab_atomic_local'
TRUST_ENV = 'EVLAB_TRUSTED_CHECKPOINT_TYPES'


def _numpy_globals() -> List[Any]:
    """numpy objects that pickled arrays and scalars refer to."""
    from numpy import dtypes
    items: List[Any] = [np.ndarray, np.dtype]
    # numpy 2 pickles arrays through numpy._core, numpy 1 through numpy.core
    for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        items += [mod._reconstruct, mod.scalar]
        break
    # the concrete dtype classes (Float64DType, Int64DType, ...)
    items += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return items


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` restricted to HistoryBuffer's statistics methods.

    Pickle protocol 2 stores the functions in a ``HistoryBuffer``'s
    ``statistics_methods`` as ``getattr(HistoryBuffer, 'mean')``. A general
    ``getattr`` would let a crafted file walk from any allowed object to
    arbitrary code, so only these lookups are served.
    """
    # the built-in statistics are registered only when a first instance is
    # made, so they are listed here too
    allowed = {'min', 'max', 'current', 'mean'}
    allowed |= set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr (on {obj!r}, {name!r})')


#: Every non-tensor type that an mmengine checkpoint written by EVLab holds.
SAFE_GLOBALS: List[Any] = [
    HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
] + _numpy_globals()


def _trusted_extra() -> List[Any]:
    """Types the user allowed through ``EVLAB_TRUSTED_CHECKPOINT_TYPES``."""
    extra = []
    for name in filter(None, (s.strip() for s in
                              os.environ.get(TRUST_ENV, '').split(','))):
        if runs_code(name):
            raise EVLabError(
                f'{TRUST_ENV} names {name!r}, which can run code: a '
                f'checkpoint that pickles it is an attack, not a type to '
                f'trust. Remove it from {TRUST_ENV}.')
        module, _, attr = name.rpartition('.')
        try:
            extra.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError, ValueError) as e:
            raise EVLabError(
                f'{TRUST_ENV} names {name!r}, which cannot be imported '
                f'({e}). Use the dotted path the refusal message printed.'
            ) from e
    return extra


class CheckpointError(EVLabError):
    """A checkpoint could not be read (missing, truncated or unsafe)."""


#: How torch's weights-only unpickler names the global it refused, in
#: each phrasing of torch/_weights_only_unpickler.py (and of
#: :func:`_history_buffer_getattr`). torch strips ``builtins.`` from the
#: first phrasing (``GLOBAL eval``); :func:`_refused_global` puts it back.
_REFUSED_RES = [
    re.compile(r'unsupported GLOBAL ([\w.]+) whose module [\w.]+ is '
               r'blocked'),
    re.compile(r'Unsupported global: GLOBAL ([\w.]+)'),
    # NEWOBJ / BUILD of a class that is not allowlisted
    re.compile(r"(?:create new object|can only build).* but got "
               r"<class '([\w.]+)'>", re.IGNORECASE),
    # REDUCE of a callable that is not allowlisted
    re.compile(r'call reduce for unrecognized function <(?:built-in )?'
               r'(?:function|method) ([\w.]+)(?:.*? which belongs to '
               r"<module '([\w.]+)')?"),
]

#: Refusals that name no type: an opcode outside the loader's subset
#: (e.g. STACK_GLOBAL of pickle protocol 4), or a module to import first.
_REFUSED_DETAIL_RE = re.compile(
    r'Unsupported operand \d+|\S+ (?:and \S+ )?must be imported to load '
    r'[^\n]+')

#: Modules whose functions run code, start processes or touch files: a
#: checkpoint that pickles a call into them is an attack, never a type to
#: trust. Matched as the module or a parent package of the global.
CODE_MODULES = frozenset({
    'os', 'posix', 'nt', 'sys', 'subprocess', '_posixsubprocess',
    'importlib', 'runpy', 'pty', 'shutil', 'code', 'codeop', 'ctypes',
    'marshal', 'pickle', '_pickle', 'dill', 'pdb', 'bdb', 'socket',
    'multiprocessing', 'signal', 'webbrowser', 'timeit', 'trace',
    'tempfile', 'pathlib', 'io', '_io', 'asyncio', 'torch.hub',
    # pickle protocol 2 writes Python 2 names: subprocess.Popen is saved
    # as commands.Popen, and torch reports it so
    'commands', 'popen2', '__builtin__'
})
#: Functions outside :data:`CODE_MODULES` that run code or reach it.
CODE_GLOBALS = frozenset({
    f'builtins.{name}' for name in (
        'eval', 'exec', 'compile', '__import__', 'getattr', 'setattr',
        'delattr', 'open', 'breakpoint', 'globals', 'locals', 'vars',
        'input', 'exit', 'quit', 'help', 'memoryview')
} | {'operator.attrgetter', 'operator.methodcaller'})


def _refused_global(message: str) -> Optional[str]:
    """The dotted name of the global that torch refused, if it says."""
    for regex in _REFUSED_RES:
        match = regex.search(message)
        if match:
            name = match.group(1)
            if match.lastindex == 2 and match.group(2):
                name = f'{match.group(2)}.{name.rpartition(".")[2]}'
            return name if '.' in name else f'builtins.{name}'
    return None


def runs_code(name: str) -> bool:
    """Whether the global ``name`` (``module.Name``) can run code."""
    module = name.rpartition('.')[0]
    return name in CODE_GLOBALS or any(
        module == m or module.startswith(m + '.') for m in CODE_MODULES)


def safe_load(filename: Union[str, os.PathLike],
              map_location: Optional[Any] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and EVLab's allowlist.

    Args:
        filename (str | PathLike): A local checkpoint file.
        map_location (optional): Same as :func:`torch.load`.
            Defaults to None.

    Raises:
        CheckpointError: The file is missing, is not a readable checkpoint
            (e.g. truncated by a crash), or pickles a type outside the
            allowlist. The message names the file and the type.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(f'checkpoint {filename!r} does not exist')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS +
                                              _trusted_extra()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as e:
        kind = _refused_global(str(e))
        if kind is None:
            # an opcode or object the weights-only loader does not accept,
            # without a type that could be trusted
            match = _REFUSED_DETAIL_RE.search(str(e))
            detail = match.group(0) if match else \
                str(e).strip().splitlines()[0][:200]
            raise CheckpointError(
                f'checkpoint {filename!r} holds pickled data that EVLab\'s '
                f'weights-only loader refuses ({detail}), so it was not '
                f'loaded. It was pickled in a way that the safe loader '
                f'does not read (e.g. pickle protocol 4 or later, or an '
                f'object that is not a tensor or a plain container); save '
                f'it again with torch.save\'s defaults, or get it again '
                f'from its source.') from None
        if runs_code(kind):
            raise CheckpointError(
                f'checkpoint {filename!r} tries to run code when it is '
                f'loaded (it pickles a call to {kind}), so it was not '
                f'loaded and must not be: a checkpoint holds weights, never '
                f'code. Get the checkpoint again from a source you trust.'
            ) from None
        raise CheckpointError(
            f'checkpoint {filename!r} contains a pickled object of type '
            f'{kind}, which is not in EVLab\'s allowlist of checkpoint '
            f'types, so it was not loaded (loading it could run arbitrary '
            f'code). If you trust this file, allow the type with '
            f'`export {TRUST_ENV}={kind}` and run again.') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(
            f'checkpoint {filename!r} is truncated or corrupt and cannot be '
            f'read ({str(e).splitlines()[0].split(". ")[0]}). If a run '
            f'crashed while saving, use the previous checkpoint in the '
            f'same folder.'
        ) from None


def load_foreign_state_dict(
        filename: Union[str, os.PathLike],
        trusted: bool = False,
        ema: bool = False,
        keys: Sequence[str] = ('state_dict', 'model')
) -> Dict[str, torch.Tensor]:
    """The weights of a checkpoint written outside EVLab (an official
    release, timm, DeiT, ...), for the model converters.

    Read with ``weights_only=True``; files of training scripts that pickle
    their ``args`` need ``trusted=True`` (``--trusted`` of the tools: only
    for files you trust, it unpickles everything). The first of ``keys``
    present is unwrapped (``{'model': ...}`` of the DeiT releases); a file
    without any of them is taken as the state dict itself. ``ema`` takes
    the EMA weights instead (required): ``state_dict_ema`` of timm's
    scripts or ``model_ema`` of DeiT's.

    Raises:
        CheckpointError: missing or unreadable file, refused unpickling,
            no EMA weights with ``ema``, or no state dict inside; the
            message
            names the file.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(f'checkpoint {filename!r} does not exist')
    try:
        ckpt = torch.load(filename, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 (any refusal: same advice)
        if not trusted:
            raise CheckpointError(
                f'{filename} cannot be read with weights_only=True '
                f'({str(e).splitlines()[0]}); if you trust the file, rerun '
                f'with --trusted') from None
        try:
            ckpt = torch.load(filename, map_location='cpu',
                              weights_only=False)
        except Exception as e2:  # noqa: BLE001
            raise CheckpointError(
                f'{filename} cannot be read ({str(e2).splitlines()[0]})'
            ) from None
    # EMA weights: timm's scripts save state_dict_ema, DeiT's model_ema
    keys = ('state_dict_ema', 'model_ema') if ema else tuple(keys)
    state = next((ckpt[k] for k in keys
                  if isinstance(ckpt, dict) and k in ckpt), None)
    if state is None and ema:
        raise CheckpointError(f'{filename} has no EMA weights (looked for '
                              f'the keys {list(keys)})')
    state = ckpt if state is None else state
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f'{filename} holds no state dict (a {type(state).__name__}'
            f'{" of non-tensors" if isinstance(state, dict) else ""}; '
            f'looked for the keys {list(keys)})')
    return state


def save_converted(state: Dict[str, torch.Tensor],
                   filename: Union[str, os.PathLike], **meta: Any) -> None:
    """Write a converted state dict as an mmengine checkpoint
    (``{'state_dict': ..., 'meta': meta}``), atomically: an existing file
    is replaced only once the new one is complete."""
    AtomicLocalBackend._atomic_write(
        str(filename), lambda f: torch.save({'state_dict': state,
                                              'meta': meta}, f))
    print(f'{len(state)} tensors -> {filename}')


def _load_from_local(filename: str, map_location: Optional[Any]) -> Any:
    return safe_load(filename, map_location)


_load_from_local.__name__ = 'load_from_local'  # mmengine logs name[10:]


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose writes are all-or-nothing.

    Data is written to a temporary file next to the target, flushed and
    fsync-ed, then renamed over the target with :func:`os.replace`, which is
    atomic on POSIX and Windows.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write ``obj`` to ``filepath`` atomically."""
        self._atomic_write(str(filepath), lambda f: f.write(obj))

    def put_text(self, obj: str, filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write text ``obj`` to ``filepath`` atomically."""
        self._atomic_write(str(filepath),
                           lambda f: f.write(obj.encode(encoding)))

    @staticmethod
    def _atomic_write(filepath: str, write: Callable) -> None:
        folder = osp.dirname(osp.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder,
                                   prefix='.' + osp.basename(filepath),
                                   suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            # mkstemp makes the file owner-only: give it the mode a plain
            # open() would (0666 minus the umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise


def install() -> None:
    """Make mmengine load local checkpoints safely and write atomically.

    Replaces mmengine's loader for local paths (the ``''`` scheme) with
    :func:`safe_load`. This needs ``force=True``: mmengine has exactly one
    loader per scheme and no other hook to change how it unpickles. The
    atomic backend is registered under its own name
    (:data:`ATOMIC_BACKEND`); :func:`use_atomic_checkpoints` points a
    config's checkpoint hook at it.
    """
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                     force=True)
    if ATOMIC_BACKEND not in _registered_backends:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


def use_atomic_checkpoints(cfg) -> None:
    """Point ``cfg.default_hooks.checkpoint`` at the atomic backend.

    Leaves a checkpoint hook alone when its config already chooses a
    backend or writes to a remote ``out_dir`` (e.g. an object store).
    """
    hook = cfg.get('default_hooks', {}).get('checkpoint')
    if hook is None or hook.get('backend_args') is not None:
        return
    if '://' not in str(hook.get('out_dir') or ''):
        hook['backend_args'] = dict(backend=ATOMIC_BACKEND)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest complete checkpoint in ``work_dir``, or None.

    mmengine trusts the ``last_checkpoint`` file alone, which is written
    after the checkpoint itself: a run killed between the two would restart
    from scratch. Checkpoints are written atomically here, so every
    ``*.pth`` present is complete and the newest one is the place to resume
    from, whatever ``last_checkpoint`` says.
    """
    candidates = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            candidates.append(named)
    if osp.isdir(work_dir):
        candidates += [
            osp.join(work_dir, name) for name in os.listdir(work_dir)
            if name.endswith('.pth') and not name.startswith('best_')
            and osp.isfile(osp.join(work_dir, name))
        ]
    if not candidates:
        return None
    return max(candidates, key=osp.getmtime)

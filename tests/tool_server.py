# Copyright (c) EVLab contributors.
"""A fork server for the tool tests (used by ``run_tool`` in conftest.py).

``python tools/train.py ...`` spends most of a short test run importing
torch, mmengine, mmcv and the host library. This server imports them once
(``python tests/tool_server.py mmdet``) and then starts each run as a
forked child of itself: a new process with its own pid, working folder,
environment, stdout and stderr files (at the file-descriptor level, so
that the output of dataloader workers and C code is in them too) and exit
status, which executes the tool's file as ``__main__`` with its argv and
exits the way the interpreter does (``SystemExit`` codes, a traceback and
status 1 for an uncaught exception, atexit handlers). The child shares
nothing with earlier runs: every one is forked from this process, which
has only imported libraries and never runs a tool or imports ``projects``.

What a child inherits that a fresh ``python`` would not have:
- the libraries already imported. Each run imports them anyway: the
  host's ``register_all_modules`` imports exactly the modules that its
  registries import while the run is built. They were imported with the
  warning filter that the tools set before their own imports (the runs
  of test_bad_inputs.py that start a new interpreter check that the tools
  do set it), under the environment the server was started with
  (conftest.py starts another server for a run whose variables differ);
  anything they printed is repeated at the start of each child's output;
- Python's hash seed, one per server: runs compared with each other get
  different servers (``run_tool(..., server=...)``).
``random`` and ``numpy`` are reseeded from the OS in each child, as a
fresh process seeds them.

Protocol (one JSON object a line on stdin/stdout): the server first writes
``{"ready", "threads", "set_env"}`` (``set_env``: the variables that the
imports set); then ``{"op": "spawn", "script", "args", "cwd", "env",
"stdout", "stderr"}`` -> ``{"pid"}`` and ``{"op": "wait", "pid",
"block"}`` -> ``{"returncode"}`` (null while it runs, minus the signal
number for a killed run). EOF on stdin ends the server.
"""
import io
import json
import os
import sys
import tempfile
import warnings

#: What tools/train.py and tools/test.py do before importing anything.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')


def _preload(host: str) -> None:
    """Import what a run of ``host`` imports: the tools' own imports and
    every module the host's registries load."""
    import importlib

    import mmengine.config  # noqa: F401
    import mmengine.evaluator  # noqa: F401
    import mmengine.runner  # noqa: F401
    import torch  # noqa: F401
    utils = importlib.import_module(f'{host}.utils')
    utils.register_all_modules(init_default_scope=False)


def _std_streams() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, as Python makes them for a
    process whose output is not a terminal."""
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, 'r', closefd=False)),
        encoding='utf-8')
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, 'w', closefd=False)),
        encoding='utf-8')
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, 'w', closefd=False)),
        encoding='utf-8', errors='backslashreplace', line_buffering=True)


def _exit_code(exc: SystemExit) -> int:
    """The interpreter's exit status for an uncaught SystemExit."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run_child(req: dict, preloaded: dict) -> int:
    """In the forked child: become ``python <script> <args>``."""
    import atexit
    import random
    import runpy
    import threading

    import numpy as np

    os.chdir(req['cwd'])
    os.environ.clear()
    os.environ.update(req['env'])
    fds = [os.open(os.devnull, os.O_RDONLY)]
    for key in ('stdout', 'stderr'):
        fds.append(os.open(req[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                           0o644))
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    _std_streams()
    sys.stdout.write(preloaded['stdout'])
    sys.stderr.write(preloaded['stderr'])
    random.seed()
    np.random.seed()
    script = req['script']
    sys.argv = [script] + list(req['args'])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001 (the interpreter prints it)
        sys.excepthook(*sys.exc_info())
        code = 1
    # what the interpreter does on the way out
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110
            pass
    return code


def main() -> None:
    host = sys.argv[1]
    env = dict(os.environ)
    # what the imports print, at the fd level
    captured = {}
    saved = {name: os.dup(fd) for name, fd in (('stdout', 1),
                                                ('stderr', 2))}
    files = {name: tempfile.TemporaryFile() for name in saved}
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(files['stdout'].fileno(), 1)
    os.dup2(files['stderr'].fileno(), 2)
    try:
        _preload(host)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for name, fd in (('stdout', 1), ('stderr', 2)):
            os.dup2(saved[name], fd)
            os.close(saved[name])
            files[name].seek(0)
            captured[name] = files[name].read().decode('utf-8', 'replace')
            files[name].close()

    import threading
    reply = sys.stdout

    def send(obj: dict) -> None:
        reply.write(json.dumps(obj) + '\n')
        reply.flush()

    send({'ready': True, 'threads': threading.active_count(),
          'set_env': {k: v for k, v in os.environ.items()
                      if env.get(k) != v}})
    for line in sys.stdin:
        req = json.loads(line)
        if req['op'] == 'spawn':
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _run_child(req, captured)
                except BaseException:  # noqa: BLE001 (a broken set-up)
                    import traceback
                    traceback.print_exc()
                finally:
                    os._exit(code)
            send({'pid': pid})
        elif req['op'] == 'wait':
            flags = 0 if req.get('block', True) else os.WNOHANG
            done, status = os.waitpid(req['pid'], flags)
            send({'returncode': os.waitstatus_to_exitcode(status)
                  if done else None})


if __name__ == '__main__':
    main()

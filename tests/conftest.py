# Copyright (c) EVLab contributors.
"""Shared fixtures: the repository root on sys.path, toy data, tool runs."""
import atexit
import fcntl
import json
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


#: The slowest test files (a minute or more of the 2-core suite, measured
#: with ``--durations``), run first. ``make test`` hands whole files to two
#: workers in collection order; starting with the long ones keeps both
#: busy to the end instead of leaving one alone with a long file (the
#: longest-first rule of scheduling). The order changes no test's result.
SLOW_FIRST = (
    'tests/tools/test_bad_inputs.py',
    'tests/projects/test_hournas/test_toy_search.py',
    'tests/projects/test_patch_slim/test_toy_search.py',
    'tests/projects/test_hit_detector/test_toy_pipeline.py',
    'tests/tools/test_train_test_tools.py',
    'tests/projects/test_defeat/test_toy_train.py',
    'tests/tools/test_resume.py',
    'tests/tools/test_slurm_train.py',
    'tests/projects/test_p2net/test_metric.py',
    'tests/tools/test_dist_train.py',
    'tests/projects/test_defeat/test_export.py',
    'tests/projects/test_issa/test_tools.py',
    'tests/projects/test_tnt/test_toy_train.py',
    'tests/projects/test_tnt/test_tnt.py',
)


def pytest_collection_modifyitems(config, items) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}

    def key(item):
        path = osp.relpath(str(item.fspath), ROOT).replace(os.sep, '/')
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the tests of a file keep their order


@pytest.fixture(scope='session')
def root() -> str:
    return ROOT


@pytest.fixture(scope='session')
def toy_data() -> str:
    """The default toy datasets under data/, generated when missing."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
    try:
        import make_toy_data
    finally:
        sys.path.pop(0)
    out = osp.join(ROOT, 'data')
    os.makedirs(out, exist_ok=True)
    # `make test` runs two pytest workers (pytest-xdist): one generates,
    # the other waits for it instead of writing the same folders
    with open(osp.join(out, '.toy_data.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for task in make_toy_data.TASKS:
                make_toy_data.make(task, out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


#: Where ``run_tool`` starts ``python tools/train.py`` and ``tools/test.py``
#: runs: as forked children of a server that has imported the config's host
#: library once (tests/tool_server.py explains what a child inherits).
#: ``EVLAB_TEST_FRESH_PROCESSES=1`` starts every run as a new interpreter.
SERVER = osp.join(ROOT, 'tests', 'tool_server.py')
FRESH_ENV = 'EVLAB_TEST_FRESH_PROCESSES'
FORKED_TOOLS = frozenset(osp.join(ROOT, 'tools', name)
                         for name in ('train.py', 'test.py'))
HOSTS = frozenset({'mmdet', 'mmseg', 'mmpretrain'})


def _run_time_variable(name: str) -> bool:
    """Whether only a run reads this variable, not the library imports:
    ``EVLAB_*`` (read by ``projects``, which a server never imports) and
    pytest's ``PYTEST_CURRENT_TEST``."""
    return name.startswith('EVLAB_') or name == 'PYTEST_CURRENT_TEST'


def _import_time_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if not _run_time_variable(k)}


class _ToolServer:
    """One tests/tool_server.py process (see there)."""

    def __init__(self, host: str, env: dict):
        self.host, self.env = host, env
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, host], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=env, text=True,
            cwd=ROOT)
        hello = self._read()
        # what the imports set themselves (cv2: QT_QPA_*, torch: ...)
        self.set_by_imports = hello['set_env']
        if hello.get('threads') != 1:
            self.close()
            raise RuntimeError(f'tool server for {host} has '
                               f'{hello.get("threads")} threads; forking '
                               f'it would not be safe')

    def fits(self, env: dict) -> bool:
        """Whether a run with ``env`` may be forked from this server: the
        variables that the imports may read are the server's, but for
        those that the imports set themselves."""
        want = _import_time_env(env)
        return all(want.get(k) == self.env.get(k) or
                   (k in self.set_by_imports and
                    want.get(k) == self.set_by_imports[k])
                   for k in set(want) | set(self.env))

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f'tool server for {self.host} ended:\n'
                               + self.log.read().decode()[-3000:])
        return json.loads(line)

    def request(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + '\n')
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


_SERVERS: Dict[Tuple[str, str], List[_ToolServer]] = {}


_OWNER = os.getpid()


@atexit.register
def _close_servers() -> None:
    if os.getpid() != _OWNER:
        return  # a forked copy of pytest: the servers are not its own
    while _SERVERS:
        for tool_server in _SERVERS.popitem()[1]:
            tool_server.close()


def _config_host(path: str) -> Optional[str]:
    """The config's ``default_scope`` when it is a host library."""
    from mmengine.config import Config
    try:
        scope = Config.fromfile(path, import_custom_modules=False).get(
            'default_scope')
    except Exception:  # noqa: BLE001 (then a fresh process reports it)
        return None
    return scope if scope in HOSTS else None


def _server_for(cmd: List[str], cwd: str, env: dict,
                server: str) -> Optional[_ToolServer]:
    """The server that starts ``cmd``, or None for a fresh process: any
    command other than ``python tools/{train,test}.py <host config>``."""
    if os.environ.get(FRESH_ENV) or len(cmd) < 3 or \
            cmd[0] != sys.executable or \
            osp.abspath(cmd[1]) not in FORKED_TOOLS:
        return None
    config = osp.join(cwd, cmd[2])
    host = osp.isfile(config) and _config_host(config)
    if not host:
        return None
    for tool_server in _SERVERS.get((host, server), []):
        if tool_server.fits(env):
            return tool_server
    tool_server = _ToolServer(host, _import_time_env(env))
    _SERVERS.setdefault((host, server), []).append(tool_server)
    return tool_server


class ForkedRun:
    """A run started by a tool server, with the ``subprocess.Popen``
    methods the tests use; its output goes to files until it ends."""

    def __init__(self, server: _ToolServer, cmd: List[str], cwd: str,
                 env: dict, discard: bool = False):
        self.server, self.args = server, cmd
        if discard:
            self.dir, self.out = None, os.devnull
        else:
            self.dir = tempfile.mkdtemp(prefix='evlab-run-')
            self.out = osp.join(self.dir, 'stdout')
        self.err = self.out if discard else osp.join(self.dir, 'stderr')
        self.returncode = None
        self.pid = server.request(op='spawn', script=cmd[1], args=cmd[2:],
                                  cwd=cwd, env=env, stdout=self.out,
                                  stderr=self.err)['pid']

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self.returncode = self.server.request(
                op='wait', pid=self.pid, block=False)['returncode']
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.05)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    def output(self) -> Tuple[str, str]:
        """stdout and stderr (once it has ended); removes the files."""
        texts = []
        for path in (self.out, self.err):
            with open(path, encoding='utf-8', errors='replace') as f:
                texts.append(f.read())
        shutil.rmtree(self.dir, ignore_errors=True)
        return texts[0], texts[1]


def _command(args: List[str], env: Optional[dict]) -> Tuple[list, dict]:
    full_env = dict(os.environ)
    full_env.pop('EVLAB_DEBUG', None)
    full_env['PYTHON'] = sys.executable
    full_env.update(env or {})
    cmd = args if args[0].endswith('.sh') else [sys.executable] + args
    if cmd[0].endswith('.sh'):
        cmd = ['bash'] + cmd
    return cmd, full_env


def start_tool(args: List[str], cwd: Optional[str] = None,
               env: Optional[dict] = None, server: str = 'main'):
    """Start ``python <args>`` like :func:`run_tool` and return at once
    (a ``subprocess.Popen`` or a :class:`ForkedRun`, output discarded)."""
    cmd, full_env = _command(args, env)
    cwd = cwd or ROOT
    tool_server = _server_for(cmd, cwd, full_env, server)
    if tool_server is None:
        return subprocess.Popen(cmd, cwd=cwd, env=full_env,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    return ForkedRun(tool_server, cmd, cwd, full_env, discard=True)


def run_tool(args: List[str], cwd: Optional[str] = None,
             env: Optional[dict] = None, timeout: int = 600,
             fresh: bool = False, server: str = 'main'
             ) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (or a shell script) like a user would.

    A train/test run on a host config is a forked child of that host's
    tool server (its own process, exit status and fd-level output);
    ``fresh=True`` starts a new interpreter instead, for the checks that a
    bare ``python tools/...`` start is quiet and wired up. Runs whose
    results are compared with each other pass different ``server`` names
    so that they do not share a hash seed.
    """
    cmd, full_env = _command(args, env)
    cwd = cwd or ROOT
    tool_server = None if fresh else _server_for(cmd, cwd, full_env,
                                                 server)
    if tool_server is None:
        return subprocess.run(cmd, cwd=cwd, env=full_env,
                              capture_output=True, text=True,
                              timeout=timeout)
    run = ForkedRun(tool_server, cmd, cwd, full_env)
    try:
        run.wait(timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        run.wait()
        run.output()
        raise
    stdout, stderr = run.output()
    return subprocess.CompletedProcess(cmd, run.returncode, stdout, stderr)


@pytest.fixture(scope='session')
def tool():
    return run_tool


def run_script(path: str, args: List[str]) -> subprocess.CompletedProcess:
    """Run ``python <path> <args>`` in this process (``runpy``, as
    ``__main__``, with ``sys.argv`` set and stdout/stderr captured): for a
    small tool that needs no process of its own, the test pays no new
    interpreter. Exit codes and messages are a process's: ``SystemExit``
    gives the code, a string code is printed to stderr with code 1."""
    import contextlib
    import io
    import runpy
    out, err = io.StringIO(), io.StringIO()
    argv, code = sys.argv, 0
    sys.argv = [path, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(path, run_name='__main__')
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess([path, *args], code, out.getvalue(),
                                       err.getvalue())


@pytest.fixture(scope='session')
def script():
    """:func:`run_script`: a tool run in the test's process."""
    return run_script


@pytest.fixture(scope='session')
def start_run():
    """:func:`start_tool`: a run to kill midway."""
    return start_tool


@pytest.fixture(scope='session')
def cls_smoke_options() -> List[str]:
    """``--cfg-options`` that shrink a toy classification config to one
    epoch of two batches of 4 images, one validation batch, a checkpoint
    and a log line per iteration (for "trains through the tools" tests)."""
    return [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.batch_size=4', 'train_dataloader.dataset.indices=8',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'val_dataloader.dataset.indices=4', 'val_dataloader.batch_size=4',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1'
    ]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a process group)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

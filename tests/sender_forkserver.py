#!/usr/bin/env python3
"""Start `python -m sender` for the tests without paying for its imports every time.

A sender process spends about half a CPU second importing pyarrow, DuckDB, requests and Typer
before it reads its command line, and the suite starts over four hundred of them. This module
runs one server process per pytest worker that imports the sender once, then forks a child per
command (tests/forkserver.py); the child runs `sender/__main__.py` as `python -m sender <args>`
runs it (runpy, the working folder first on the module path), in the caller's working folder,
environment, umask, time zone and signals, with its standard streams made again for pipes, as
subprocess.run gives them, and its own exit.

    run(["status"], env=..., cwd=..., timeout=60) -> subprocess.CompletedProcess

What a fork cannot give a command is what is read as a process starts: the interpreter's flags
and module path (PYTHON*), its streams' encoding (PYTHONIOENCODING, the locale), a library loaded
before it (LD_PRELOAD: the year test's libfaketime), the C library's malloc settings, and what
Typer and pyarrow read as the server imports them (TYPER_*, ARROW_*). A command whose
environment differs from the server's in any of these, whose working folder holds another
`sender`, or with env LINE_CAPI_TEST_SENDER=subprocess is a plain process (`make test` passes
either way; the server only saves time).

A `sender run` forked here starts its push (`python -m sender --debug push`, as
sys.executable) from the same server: its sys.executable is a script in the server's folder
that acts as that Python (as_python), beside a `dbt` that is the real one (the run looks for
dbt next to its Python). It forwards `-m sender ...` to the server when it would fork, and else
becomes the real Python.
"""

from __future__ import annotations

import json
import locale
import os
import runpy
import selectors
import shlex
import subprocess
import sys
import time
from pathlib import Path

import forkserver

REPO = Path(__file__).resolve().parent.parent
# what an interpreter, or a library as the server imports it, reads as it starts
STARTUP = (
    "PYTHON",
    "_PYTHON",
    "LC_",
    "LANG",  # and LANGUAGE
    "LOCPATH",
    "GCONV_PATH",
    "LD_",
    "FAKETIME",
    "MALLOC_",
    "GLIBC_TUNABLES",
    "TYPER_",
    "ARROW_",
    "JE_ARROW_",
)
_server = forkserver.Client(str(Path(__file__).resolve()), "sender", env=lambda: _server_env())
# what a forked command's Python (as_python) reads: the server's socket, and what the server's
# interpreter started with (see forks)
SERVER_ENV = "LINE_CAPI_TEST_SENDER_SERVER"
STARTUP_ENV = "LINE_CAPI_TEST_SENDER_STARTUP"
AS_PYTHON = "--as-python"  # this file's first argument when it runs as that Python


def run(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    reader_gone: bool = False,
) -> subprocess.CompletedProcess:
    """`python -m sender <args>` with exactly ``env``, its output captured as text from pipes, as
    subprocess.run captures it. With ``reader_gone``, the reader of its stdout has closed it
    before the command writes (``sender preview | head`` once head has its lines): stdout is
    then empty."""
    command = [sys.executable, "-m", "sender", *args]
    if not forks(env, cwd):
        return _plain(command, env=env, cwd=cwd, timeout=timeout, reader_gone=reader_gone)
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    if reader_gone:
        os.close(out_read)
    readers = [err_read] if reader_gone else [out_read, err_read]
    writers = [out_write, err_write]
    read: dict[int, list[bytes]] = {fd: [] for fd in readers}

    def drain(deadline: float) -> None:
        """Until both pipes end, as subprocess.run reads them: a process the command left
        behind holding them keeps the caller waiting too."""
        while writers:
            os.close(writers.pop())  # the command holds its own copies
        with selectors.DefaultSelector() as selector:
            for fd in readers:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        read[key.fd].append(data)
                    else:
                        selector.unregister(key.fd)

    try:
        with open(os.devnull) as stdin:
            fds = [stdin.fileno(), out_write, err_write]
            code = _server.run(
                args, cwd=cwd, env=env, fds=fds, timeout=timeout, while_running=drain
            )
    finally:
        for fd in readers + writers:
            os.close(fd)
    stdout = "" if reader_gone else _text(b"".join(read[out_read]))
    return subprocess.CompletedProcess(command, code, stdout, _text(b"".join(read[err_read])))


def forked() -> list[list[str]]:
    """The arguments of every command this process's server forked so far."""
    return _server.forked()


def python_env() -> dict[str, str]:
    """What a forked command's Python (as_python) reads in its environment, for this process's
    server (started if it was not)."""
    address = _server.address()
    return {SERVER_ENV: address, STARTUP_ENV: json.dumps(_startup(_server.started_env))}


def forks(env: dict[str, str], cwd: Path, started: dict[str, str] | None = None) -> bool:
    """Whether a command with ``env`` in ``cwd`` is forked from the server, whose interpreter
    started with ``started`` (by default this process's server): it would start as the
    server's interpreter started, with the same `sender`."""
    if os.environ.get("LINE_CAPI_TEST_SENDER") == "subprocess":
        return False
    if started is None:
        started = _server.started_env or _server_env()
    if _startup(env) != _startup(started):
        return False
    if not all(os.path.isabs(entry) for entry in env.get("PYTHONPATH", "").split(os.pathsep)):
        return False  # Python makes a relative entry absolute in its own folder
    folder = Path(cwd).resolve()
    if not folder.is_dir():
        return False  # subprocess.run refuses it: the plain process says how
    return folder == REPO or not any((folder / name).exists() for name in ("sender", "sender.py"))


def _startup(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(STARTUP)}


def _server_env() -> dict[str, str]:
    """The pytest worker's environment with the checkout on the module path, as the tests run
    the sender."""
    return {"PYTHONPATH": str(REPO), **os.environ}


def _plain(command, *, env, cwd, timeout, reader_gone) -> subprocess.CompletedProcess:
    if not reader_gone:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(cwd)
        )
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(cwd)
    ) as proc:
        proc.stdout.close()  # before the interpreter has started: its first write fails
        _, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(command, proc.returncode, "", stderr)


def _text(data: bytes) -> str:
    """What ``subprocess.run(..., text=True)`` makes of a stream's bytes."""
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def as_python(args: list[str]) -> None:
    """The Python of a forked command (its sys.executable), run with ``args``: `-m sender ...`
    from the server when it would fork there, else the real Python, which runs this script."""
    started = json.loads(os.environ.get(STARTUP_ENV, "null"))
    if args[:2] == ["-m", "sender"] and started is not None:
        if forks(dict(os.environ), Path.cwd(), started):
            forkserver.act_as(os.environ[SERVER_ENV], args[2:], "sender")
    os.execv(sys.executable, [sys.executable, *args])  # noqa: S606  (as the real Python)


# ---------------------------------------------------------------------------------- server side

# in the server: the script forked commands have as their Python (as_python), and what it reads
_python, _python_env = "", {}


def _serve(address: str) -> None:
    global _python, _python_env
    sys.path[0] = str(REPO)  # as for `python -m sender` in the checkout, not this file's folder
    import sender.cli  # noqa: F401  (and with it every module of the sender but dbt's plugin)

    _import_on_first_use()
    _python = _python_beside_dbt(Path(address).parent)
    _python_env = {SERVER_ENV: address, STARTUP_ENV: json.dumps(_startup(dict(os.environ)))}
    forkserver.freeze("sender")
    forkserver.serve(address, _become_sender)


def _python_beside_dbt(folder: Path, real: str = sys.executable) -> str:
    """A script in ``folder`` that runs as_python on the ``real`` Python, and beside it the
    `dbt` next to that Python, which a run looks for there. A shell script: a `#!` line cannot
    name a path with a space. The Python starts without site-packages (-S): as_python needs only
    this file and tests/forkserver.py."""
    python = folder / "python"
    here = str(Path(__file__).resolve())
    python.write_text(
        f'#!/bin/sh\nexec {shlex.quote(real)} -S {shlex.quote(here)} {AS_PYTHON} "$@"\n'
    )
    python.chmod(0o755)
    (folder / "dbt").symlink_to(Path(real).parent / "dbt")
    return str(python)


def _import_on_first_use() -> None:
    """What every command imports as it runs: Typer's pydantic adapters, which read its
    arguments (0.06 CPU s)."""
    import typer._adapters  # noqa: F401
    import typer._click.decorators  # noqa: F401


def _become_sender(request: dict) -> None:
    """What `python -m sender` does, in a process that already imported the sender and is its
    caller's."""
    sys.path[0] = os.getcwd()  # -m puts the working folder first
    sys.argv = [sys.executable, *request["args"]]  # runpy sets argv[0] to __main__.py's path
    # the push of a `sender run` starts from the server too, and so does a command that one of
    # its commands starts (their environments hold what as_python reads)
    sys.executable = _python
    os.environ.update(_python_env)
    runpy.run_module("sender", run_name="__main__", alter_sys=True)
    sys.exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == [forkserver.SERVE]:
        _serve(sys.argv[2])
    elif sys.argv[1:2] == [AS_PYTHON]:
        as_python(sys.argv[2:])

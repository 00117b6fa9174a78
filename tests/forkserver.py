"""A fork server for the tests: one process that has imported a program forks a child per
command, so the suite does not pay for the program's start-up at every command. The child is
the command as its own script would run it: the caller's argv, working folder, environment,
umask, time zone, ignored signals and standard streams (passed as file descriptors), its own
exit code, or the signal that ended it. tests/dbt_forkserver.py serves dbt, and
tests/sender_forkserver.py the sender.

The protocol is one Unix socket connection per command: the client sends its argv, working
folder, environment, umask and the signals it ignores as one JSON line with its stdin, stdout
and stderr as file descriptors (SCM_RIGHTS); the server forks a handler that forks the
command, answers ``pid N`` when it started and ``exit N`` (minus the signal, if a signal ended
it) when it ended. The handler kills the command when its caller goes away first.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # see become_caller
SERVE = "--serve-forks"  # a server script's first argument, then its socket's path
FORKED = "forked"  # beside the socket: each forked command's arguments, one JSON line each


class Client:
    """The caller's side of one server: ``script`` run as ``python script --serve-forks PATH``
    (in the environment ``env()`` returns, else the caller's), started on first use in a private
    temporary folder and stopped when the caller exits."""

    def __init__(self, script: str, name: str, env: Callable[[], dict[str, str]] | None = None):
        self.script, self.name, self.env = script, name, env
        self._server: tuple[subprocess.Popen, str] | None = None
        self.started_env: dict[str, str] | None = None  # the running server's environment

    def address(self) -> str:
        """The server's socket."""
        if self._server is None or self._server[0].poll() is not None:
            folder = tempfile.mkdtemp(prefix=f"line-capi-{self.name}-fork-")
            address = os.path.join(folder, "socket")
            self.started_env = self.env() if self.env else dict(os.environ)
            server = subprocess.Popen(
                [sys.executable, self.script, SERVE, address],
                stdin=subprocess.DEVNULL,
                env=self.started_env,
            )
            atexit.register(_stop, server, folder)
            while not os.path.exists(address):  # the server binds once it is ready
                try:
                    server.wait(0.02)
                except subprocess.TimeoutExpired:
                    continue
                raise RuntimeError(f"the {self.name} fork server could not start (see above)")
            self._server = (server, address)
        return self._server[1]

    def forked(self) -> list[list[str]]:
        """The arguments of every command the server forked so far, in order."""
        if self._server is None:
            return []
        record = Path(self._server[1]).with_name(FORKED)
        return [json.loads(line) for line in record.read_text().splitlines()]

    def run(
        self,
        args: list[str],
        *,
        cwd,
        env: dict[str, str],
        fds: list[int],
        timeout: float,
        while_running: Callable[[float], None] = lambda deadline: None,
    ) -> int:
        """Run the command with ``fds`` as its stdin, stdout and stderr: what
        ``subprocess.run(...).returncode`` would return, or TimeoutExpired. Once it started,
        ``while_running(deadline)`` (a time.monotonic() reading; TimeoutError past it): reading
        its pipes, for one."""
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.address())
            conn.settimeout(timeout)
            pid = None
            try:
                pid, answers = start(conn, args, cwd, env, fds)
                while_running(deadline)
                conn.settimeout(max(deadline - time.monotonic(), 0.001))
                return exit_code(pid, answers, self.name)
            except TimeoutError:
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                        os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired([self.name, *args], timeout) from None


def _stop(server: subprocess.Popen, folder: str) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


def start(conn: socket.socket, args: list[str], cwd, env: dict, fds: list[int]):
    """Ask the server for the command on the three standard streams ``fds``: its pid, and the
    reader of the server's answers."""
    umask = _umask()
    # a process started from a script's `cmd &` ignores SIGINT and SIGQUIT, and so does every
    # program it starts: an exec keeps the signals a process ignores
    ignored = [int(s) for s in FORWARDED if signal.getsignal(s) == signal.SIG_IGN]
    request = {"args": args, "cwd": str(cwd), "env": env, "umask": umask, "ignored": ignored}
    socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], fds)
    answers = conn.makefile("r")
    return int(answers.readline().split()[1]), answers


def _umask() -> int:
    """This process's umask, read without setting it (which would race its other threads)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise RuntimeError("no Umask in /proc/self/status")


def exit_code(pid: int, answers, name: str) -> int:
    answer = answers.readline()
    if not answer.startswith("exit "):
        raise RuntimeError(f"the {name} fork server stopped while its command ran (pid {pid})")
    return int(answer.split()[1])


def act_as(address: str, args: list[str], name: str) -> None:
    """This process run as the program (the server's command with ``args``, started by a
    program under test as it starts the real one): the server's child writes to this process's
    standard streams, gets the signals this process gets, and this process ends as it ended,
    with its exit code or by its signal."""
    # a signal before the command's pid is known would end this process and leave the command
    # running (its program would have died at start): held until it can be passed on
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(address)
        pid, answers = start(conn, args, os.getcwd(), dict(os.environ), [0, 1, 2])
        for forwarded in FORWARDED:
            signal.signal(forwarded, lambda number, _: pass_on(pid, number))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        code = exit_code(pid, answers, name)
    if code < 0:
        if -code in FORWARDED:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


def pass_on(pid: int, number: int) -> None:
    """A signal to the command: one that came after it ended is ignored, as the program itself,
    gone, would not have had it (its exit code stands)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


# ---------------------------------------------------------------------------------- server side


def freeze(name: str) -> None:
    """Before serving: nothing may run at a fork (no thread of Python's or of a library's) but
    jemalloc's background thread, which pyarrow starts at import and jemalloc itself turns off in
    a forked child. And every object the server holds so far goes out of the collector's reach:
    otherwise each child's full collections walk them all again and write to their pages, which
    the fork shares until written (a dbt build took about 16% less)."""
    tasks = [task for task in Path("/proc/self/task").iterdir() if task.name != str(os.getpid())]
    threads = [Path(task, "comm").read_text().strip() for task in tasks]
    others = [thread for thread in threads if thread != "jemalloc_bg_thd"]
    if threading.active_count() != 1 or others:
        raise RuntimeError(f"the {name} fork server's warm-up left threads running: {others}")
    gc.collect()
    gc.freeze()


def serve(
    address: str,
    become: Callable[[dict], None],
    before: Callable[[dict], object] = lambda request: None,
    after: Callable[[object], None] = lambda prepared: None,
) -> None:
    """Serve on ``address`` until stopped: for each request, ``before(request)`` in the handler,
    ``become(request)`` in the command's process once it is the caller's (see become_caller;
    it exits as the command exits), then ``after(what before returned)`` once it ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # _stop: exit as Python exits
    record = os.path.join(os.path.dirname(address), FORKED)
    Path(record).touch()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address + ".binding")
    listener.listen()
    os.rename(address + ".binding", address)  # the client waits for this name
    parent = os.getppid()
    listener.settimeout(2)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the pytest worker died without stopping the server
                sys.exit(0)
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _handle(conn, record, become, before, after)  # never returns: its process exits
        conn.close()


def _handle(conn: socket.socket, record: str, become, before, after) -> None:
    """In the handler: fork the command, say its pid, wait for it, say how it ended."""
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while not message.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:  # the caller went away before it finished asking
            os._exit(1)
        message += more
    request = json.loads(message)
    with open(record, "a") as forked:  # one write of one line: the handlers' lines stay whole
        forked.write(json.dumps(request["args"]) + "\n")
    prepared = before(request)
    pid = os.fork()
    if pid == 0:
        conn.close()
        become_caller(request, fds)
        become(request)  # exits as the command exits
    try:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):  # its caller went first: killed just below
            conn.sendall(f"pid {pid}\n".encode())
        _wait_unless_abandoned(pid, conn)
        status = os.waitpid(pid, 0)[1]
        after(prepared)
        conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
    finally:
        os._exit(0)


def _wait_unless_abandoned(pid: int, conn: socket.socket) -> None:
    """Wait until the command ends; kill it if its caller goes first (a caller killed by
    SIGKILL, a test that timed out), as nothing would be left to read what it writes."""
    ended = os.pidfd_open(pid)
    while True:
        ready = select.select([ended, conn], [], [])[0]
        if ended in ready:
            return
        try:
            gone = not conn.recv(1)
        except OSError:
            gone = True
        if gone:
            os.kill(pid, signal.SIGKILL)
            return


def become_caller(request: dict, fds: list[int]) -> None:
    """In the command's process: the caller's standard streams, umask, signals, working folder,
    environment and time zone, as a new process started by the caller would have them."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.umask(request["umask"])
    # the signals its caller ignores, the others as a new Python process has them: a command
    # started by a test run in the background (SIGINT ignored) ignores Ctrl-C, as its script would
    for number in FORWARDED:
        default = signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
        ignored = number in request["ignored"]
        signal.signal(number, signal.SIG_IGN if ignored else default)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # a new process reads TZ as it starts
    _new_standard_streams()


def _new_standard_streams() -> None:
    """sys.stdin, stdout and stderr made again for the caller's files, as an interpreter makes
    them as it starts (CPython's create_stdio): the server's were made for its own files, and a
    stream keeps what it found then (a file it can seek in, not a terminal). Encoding, errors
    and buffering (PYTHONUNBUFFERED) stay the server's: the clients fork only commands whose
    environment starts an interpreter as the server's did."""
    buffered = not isinstance(sys.__stdout__.buffer, io.RawIOBase)  # else PYTHONUNBUFFERED
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        old = getattr(sys, f"__{name}__")
        unbuffered_writes = not buffered and mode == "w"
        binary = open(fd, mode + "b", buffering=0 if unbuffered_writes else -1, closefd=False)  # noqa: SIM115
        raw = binary if unbuffered_writes else binary.raw
        raw.name = f"<{name}>"
        stream = io.TextIOWrapper(
            binary,
            encoding=old.encoding,
            errors=old.errors,
            newline="\n",
            line_buffering=buffered and (fd == 2 or raw.isatty()),
            write_through=not buffered,
        )
        stream.mode = mode
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)

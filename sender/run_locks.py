"""``sender run``'s two locks, both ``fcntl.flock`` on a small file that names its holder.

- The database's (``<database>.lock``), held for the whole run: a second run for the same
  database exits at once (exit 13), naming the first one's pid.
- dbt's target folder's (``target/.sender-run.lock``), held while dbt writes that folder and the
  run reads its results: a run for another database of the same checkout (another site) waits.

The kernel releases both when the process dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from sender import fault_points
from sender.errors import RunError
from sender.exit_codes import ExitCode
from sender.file_modes import private_file

TARGET_LOCK_NAME = ".sender-run.lock"


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        return f"uid {os.getuid()}"


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _open_lock_file(path: Path, folder: str, code: ExitCode, *, create: bool = False) -> IO[str]:
    try:
        if create:  # dbt's target folder: dbt would create it
            path.parent.mkdir(parents=True, exist_ok=True)
        return private_file(path, "a+")
    except OSError as exc:  # the folder is not this user's, or read-only
        raise RunError(
            f"cannot create the lock file {path}: {exc.strerror or exc}; this run's user"
            f" ({current_user()}) must be able to write {folder}",
            code,
        ) from None


def _write_holder(f: IO[str], holder: str, path: Path, code: ExitCode) -> None:
    """Note who holds the lock file at ``path``; a full disk refuses even these few bytes."""
    try:
        f.seek(0)
        f.truncate()
        fault_points.hit("lock_write")  # test hook: sender/fault_points.py
        f.write(f"{holder}\n")
        f.flush()
    except OSError as exc:
        raise RunError(
            f"cannot write the lock file {path}: {exc.strerror or exc} (a full disk? free disk"
            " space)",
            code,
        ) from None


def _named_holder(noted: str) -> str:
    """Who holds the run lock, from what its holder wrote: ``123`` (a sender run), or ``123
    sender backup`` (another command that copies the database between runs)."""
    pid, _, command = noted.strip().partition(" ")
    if not command or command == "sender run":
        return f"another sender run (pid {pid or '?'})"
    return f"a {command} (pid {pid})"


@contextlib.contextmanager
def run_lock(database: Path, *, holder: str = "sender run") -> Iterator[Path]:
    """Hold the lock file next to the database for the whole run (released by the kernel if the
    process dies, so a killed run never leaves a stale lock); ``holder``: the command that holds
    it, as the message of another one that finds it held names it."""
    path = lock_path(database)
    with _open_lock_file(path, "the database's folder", ExitCode.DATABASE_ERROR) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunError(
                f"{_named_holder(f.read())} holds {path}; this one did nothing",
                ExitCode.ALREADY_RUNNING,
            ) from None
        noted = str(os.getpid()) + ("" if holder == "sender run" else f" {holder}")
        _write_holder(f, noted, path, ExitCode.DATABASE_ERROR)
        try:
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def target_lock(target: Path, database: Path, say: Callable[[str], None]) -> Iterator[None]:
    """Hold dbt's target folder while dbt writes it and the run reads its results. A run for
    another database of the same checkout (another site) holds it: wait, saying so once, rather
    than let two dbt builds write the same sources.json and run_results.json and each read the
    other's."""
    path = target / TARGET_LOCK_NAME
    with _open_lock_file(path, f"dbt's target folder {target}", ExitCode.USAGE, create=True) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another database"
            say(
                f"waiting for the sender run of {holder}: it uses the same dbt target folder"
                f" {target} (set DBT_TARGET_PATH per database to run them side by side)"
            )
            fcntl.flock(f, fcntl.LOCK_EX)
        _write_holder(f, f"{database} (pid {os.getpid()})", path, ExitCode.BUILD_FAILED)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

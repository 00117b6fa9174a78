"""Files readable by their owner only: the DuckDB file holds personal data (docs/security.md).

Everything the project writes (the database and its WAL, the run log, the lock file, reports) is
created with mode 0600 and its new folders with 0700, whatever the umask; an existing file that
others can read is tightened, and the caller says so in one line.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# Group and others get nothing; the owner's own bits stay as the umask has them.
PRIVATE_UMASK_BITS = 0o077


def private_umask() -> int:
    """The current umask with group and others masked (what ``use_private_umask`` sets)."""
    current = os.umask(PRIVATE_UMASK_BITS)
    os.umask(current)
    return current | PRIVATE_UMASK_BITS


def use_private_umask() -> int:
    """Mask group and others for every file this process (and its children) creates from now
    on; returns the previous umask."""
    return os.umask(private_umask())


def tighten(path: Path, *, folder: bool = False) -> str | None:
    """Make ``path`` its owner's only: a regular file, or with ``folder`` a folder. Returns one line
    saying what was done when it was open to others, None when it already was private, does not
    exist or is not of that kind (a folder named where a file is expected, /dev/null), or is a
    sticky folder: a mistyped path must never change a shared folder such as /tmp. A file of
    another user cannot be changed: the line then says who should run what."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        return None
    if folder and st.st_mode & stat.S_ISVTX:
        return None  # a sticky folder (/tmp) is shared on purpose
    mode = stat.S_IMODE(st.st_mode)
    if not mode & PRIVATE_UMASK_BITS:
        return None
    wanted = PRIVATE_DIR if folder else PRIVATE_FILE
    try:
        os.chmod(path, wanted)
    except PermissionError:
        return (
            f"{path} is readable by other users (mode {mode:04o}) and belongs to another user:"
            f" its owner should run chmod {wanted:o} {path}"
        )
    except OSError as exc:  # a read-only file system (a mounted copy to inspect)
        reason = exc.strerror or type(exc).__name__
        return f"{path} is readable by other users (mode {mode:04o}) and stays so: {reason}"
    return f"{path} was readable by other users (mode {mode:04o}): set to {wanted:04o}"


def make_tree_private(root: Path) -> int:
    """Set every folder under ``root`` (itself included) that others can access to 0700, and
    every such regular file to 0600, without following links (a copied tree keeps its source's
    modes, whatever the umask); returns how many were changed."""
    changed = 0
    for folder, _folders, files in os.walk(root):  # links to folders are listed, not entered
        for path in (Path(folder), *(Path(folder, name) for name in files)):
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            wanted = {stat.S_IFDIR: PRIVATE_DIR, stat.S_IFREG: PRIVATE_FILE}.get(kind)
            if wanted is not None and st.st_mode & PRIVATE_UMASK_BITS:
                os.chmod(path, wanted)
                changed += 1
    return changed


def database_files(path: Path) -> list[tuple[Path, bool]]:
    """The DuckDB file and what DuckDB writes beside it: its WAL and its spill folder (each with
    whether it is a folder)."""
    return [
        (path, False),
        (path.with_name(path.name + ".wal"), False),
        (path.with_name(path.name + ".tmp"), True),
    ]


# A DuckDB database file holds these 4 bytes at offset 8 (its main header).
DUCKDB_MAGIC = b"DUCK"


def looks_like_duckdb(path: Path) -> bool:
    """Whether the file ``path`` is empty or begins as a DuckDB database does (a file that
    cannot be read counts as one: opening it says why)."""
    try:
        with path.open("rb") as file:
            head = file.read(12)
    except OSError:
        return True
    return not head or head[8:12] == DUCKDB_MAGIC


def tighten_database(path: Path) -> list[str]:
    """:func:`tighten` the database's files; one line for each that was open to others. A file
    that is not a DuckDB database (a CSV named by mistake) is left as it is."""
    if path.is_file() and not looks_like_duckdb(path):
        return []
    messages = []
    for each, folder in database_files(path):
        message = tighten(each, folder=folder)
        if message:
            messages.append(f"database file {message} (it holds personal data)")
    return messages


def make_private_dir(path: Path) -> Path:
    """``mkdir -p`` whose new folders are 0700 (existing ones are left as they are)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode goes through the umask
    return path


def private_file(path: Path, mode: str = "w", encoding: str = "utf-8") -> IO:
    """Open a file for writing (``w``, ``a``, ``a+``, ``wb``, ...) created with mode 0600; an
    existing one is set to 0600 too. Its folder is created 0700 when missing. Use it in a
    ``with`` block like ``open``."""
    make_private_dir(path.parent)
    flags = os.O_CREAT | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    if mode.startswith("w"):
        flags |= os.O_TRUNC
    elif mode.startswith("a"):
        flags |= os.O_APPEND
    else:
        raise ValueError(f"private_file writes only: mode {mode!r}")
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        # an existing file keeps its mode through os.open; a device (/dev/null, /dev/stdout) or a
        # pipe is not ours to change: as root, fchmod would make /dev/null 0600 for everyone
        if stat.S_ISREG(os.fstat(fd).st_mode):
            with contextlib.suppress(PermissionError):  # another user's file, opened by its group
                os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write a whole file readable by its owner only (a report, an export): written to a private
    temporary file beside it, then renamed, so no reader ever sees half of it."""
    if path.exists() and not (path.is_file() or path.is_dir()):  # -o /dev/stdout: written to
        with private_file(path, "w", encoding) as f:
            f.write(text)
        return path
    target = path.resolve() if path.is_symlink() else path  # the file a link names, not the link
    make_private_dir(target.parent)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with private_file(partial, "w", encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path

"""How much memory DuckDB may use while dbt builds, and what to say when the build runs out.

DuckDB's own default is 80% of the memory it sees (the machine's, or the container's cgroup
limit), and that limit covers its buffers only: dbt's Python process and DuckDB's other
allocations come on top, about 300 MB. In a 1 GB container a large export's build therefore
passes the container's limit, and the kernel kills dbt with SIGKILL, without a message. The
build's default leaves that room: 60% of the memory DuckDB sees. Past its limit DuckDB spills to
``<database>.tmp`` on disk instead of failing, a little slower.

``LINE_CAPI_BUILD_MEMORY_LIMIT`` sets another limit (``2GB``, ``1.5GiB``, ``75%``);
the dbt-duckdb plugin of ``profiles.example.yml`` (sender/dbt_private_files.py) applies it to
every dbt command, and a profile's own ``settings: {memory_limit: ...}`` still wins over both.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping

import duckdb

ENV_VAR = "LINE_CAPI_BUILD_MEMORY_LIMIT"
DEFAULT = "60%"
DOCS = "docs/operations.md, 'Memory and disk'"

# DuckDB's words when a query needs more memory than its limit and cannot spill
_OUT_OF_MEMORY = re.compile(r"Out of Memory Error: (.*)")
_NO_SPACE = re.compile(r"No space left on device")


class MemoryLimitError(ValueError):
    """LINE_CAPI_BUILD_MEMORY_LIMIT is not a memory size DuckDB accepts."""


def build_memory_limit(env: Mapping[str, str]) -> str:
    """The limit for the build's DuckDB: the environment's, checked by DuckDB itself, or DEFAULT.

    Raises MemoryLimitError with one line naming the variable when DuckDB refuses the value.
    """
    raw = (env.get(ENV_VAR) or "").strip()
    if not raw:
        return DEFAULT
    try:
        with duckdb.connect(config={"memory_limit": raw}):
            pass
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Out of Memory" in reason:
            reason = "too small for DuckDB to start"
        raise MemoryLimitError(
            f"{ENV_VAR}={raw!r} is not a memory limit DuckDB accepts ({reason}): give a size such"
            f" as 2GB or 1.5GiB, or a share of the machine's memory such as 60% ({DOCS})"
        ) from None
    return raw


def out_of_memory(lines: list[str]) -> str | None:
    """Why a dbt command's DuckDB ran out of memory or of disk, as one line, or None."""
    for line in lines:
        found = _OUT_OF_MEMORY.search(line)
        if found:
            return (
                f"DuckDB ran out of memory ({found.group(1).strip()}): set {ENV_VAR} higher, up to"
                f" about 400 MB less than the machine or container has, or run on a larger one"
                f" ({DOCS})"
            )
    for line in lines:
        if _NO_SPACE.search(line):
            return (
                "the disk is full (No space left on device): DuckDB writes the database and, past"
                f" its memory limit, spills to <database>.tmp beside it; free space there ({DOCS})"
            )
    return None


def killed_by(returncode: int) -> str | None:
    """The signal that killed a child process (``Popen``'s negative return code), or None."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def killed_message(step: str, signal_name: str) -> str:
    """One line for a dbt command killed by a signal: a SIGKILL nobody sent is the kernel's."""
    if signal_name == "SIGKILL":
        return (
            f"{step} was killed by SIGKILL: on Linux this is usually the out-of-memory killer (the"
            f" machine or container has less memory than DuckDB's limit plus dbt's own); set"
            f" {ENV_VAR} lower, about 400 MB less than it has, or give it more memory ({DOCS})"
        )
    return f"{step} was killed by {signal_name} before it finished (a timeout, or a person)"

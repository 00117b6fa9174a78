"""How much memory DuckDB may use while dbt builds, and what to say when the build runs out.

DuckDB's own default is 80% of the memory it sees (the machine's, or the container's cgroup
limit), and that limit covers its buffers only: dbt's Python process and DuckDB's other
allocations come on top, so a container sized to DuckDB's figure kills dbt (SIGKILL, no message).
The build's default leaves that room: 60%. Past its limit DuckDB spills to ``<database>.tmp``
instead of failing. docs/operations.md ("Memory and disk") has the measured figures.

``LINE_CAPI_BUILD_MEMORY_LIMIT`` sets another limit (``2GB``, ``1.5GiB``, ``75%``); the dbt-duckdb
plugin of ``profiles.example.yml`` (sender/dbt_private_files.py) applies it to every dbt
connection. A profile's ``config_options: {memory_limit: ...}`` replaces the default but not the
variable, and its ``settings: {memory_limit: ...}`` wins over both.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping

from sender.database import memory_limit_problem

ENV_VAR = "LINE_CAPI_BUILD_MEMORY_LIMIT"
DEFAULT = "60%"
# A file the plugin touches when it is loaded (sender run names one): a profile copied before the
# plugin existed (an upgrade that kept its profiles.yml) applies neither this limit nor the
# private modes, and the run says so.
PLUGIN_SEEN_ENV = "LINE_CAPI_PLUGIN_SEEN"
PLUGIN_MISSING = "dbt built without the profile's plugin sender.dbt_private_files"
DOCS = "docs/operations.md, 'Memory and disk'"

# DuckDB's words when a query needs more memory than its limit and cannot spill; past
# max_temp_directory_size (90% of the free disk) a spill fails with the same words
_OUT_OF_MEMORY = re.compile(r"Out of Memory Error: (.*)")
_SPILL_FULL = re.compile(r"failed to offload|max_temp_directory_size")
_NO_SPACE = re.compile(r"No space left on device")
# signals a person or a scheduler sends to stop a process; any other means it crashed
_STOPPED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


class MemoryLimitError(ValueError):
    """LINE_CAPI_BUILD_MEMORY_LIMIT is not a memory size DuckDB accepts."""


def configured(env: Mapping[str, str]) -> str | None:
    """The variable's value, or None when it is unset or empty (a blank line of a .env)."""
    return (env.get(ENV_VAR) or "").strip() or None


def build_memory_limit(env: Mapping[str, str]) -> str:
    """The limit for the build's DuckDB: the environment's, checked by DuckDB itself, or DEFAULT.

    Raises MemoryLimitError with one line naming the variable when DuckDB refuses the value.
    """
    raw = configured(env)
    if raw is None:
        return DEFAULT
    reason = memory_limit_problem(raw)
    if reason is not None:
        raise MemoryLimitError(
            f"{ENV_VAR}={raw!r} is not a memory limit DuckDB accepts ({reason}): give a size such"
            f" as 2GB or 1.5GiB, or a share of the machine's memory such as 60% ({DOCS})"
        )
    return raw


def out_of_memory(lines: list[str]) -> str | None:
    """Why a dbt command's DuckDB ran out of memory or of disk, as one line, or None."""
    disk_full = (
        "the disk is full: DuckDB writes the database and, past its memory limit, spills to"
        f" <database>.tmp beside it; free space on that disk ({DOCS})"
    )
    for line in lines:
        found = _OUT_OF_MEMORY.search(line)
        if found and _SPILL_FULL.search(line):
            return disk_full
        if found:
            return (
                f"DuckDB ran out of memory ({found.group(1).strip()}): set {ENV_VAR} higher, up to"
                " about 400 MB less than the machine or container has, or give the job more"
                f" memory ({DOCS}: what builds in how much)"
            )
    if any(_NO_SPACE.search(line) for line in lines):
        return disk_full
    return None


def killed_by(returncode: int, *, shell_codes: bool = False) -> str | None:
    """The signal that killed a child process, or None: ``Popen``'s negative return code, and
    with ``shell_codes`` also 128 + N, what a shell wrapper reports (dbt itself exits 0, 1 or 2;
    not for the sender, whose 130 is its own)."""
    if returncode < 0:
        number = -returncode
    elif shell_codes and 128 < returncode < 160:
        number = returncode - 128
    else:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def killed_message(step: str, signal_name: str) -> str:
    """One line for a dbt command killed by a signal: a SIGKILL nobody sent is the kernel's."""
    if signal_name == "SIGKILL":
        return (
            f"{step} was killed by SIGKILL: on Linux this is usually the out-of-memory killer (the"
            f" machine or container has less memory than DuckDB's limit plus dbt's own); set"
            f" {ENV_VAR} lower, about 400 MB less than it has, or give the job more memory"
            f" ({DOCS}: what builds in how much)"
        )
    if signal_name in _STOPPED:
        return f"{step} was stopped by {signal_name} before it finished (a timeout, or a person)"
    return (
        f"{step} crashed ({signal_name}): a bug in DuckDB or dbt, not in the export; the run log"
        " has its last lines"
    )

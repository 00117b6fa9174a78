"""A test hook: die or fail at a named point of a push or a build, to test crash safety and
disk-full handling.

Kill points that timing alone hits only by luck (after LINE answered but before the ledger
recorded the answer; in the middle of a ledger transaction) are reached on purpose by setting

    LINE_CAPI_FAULT_POINT=<point>:<n>[:<action>]

in the environment of a test process. At the ``n``-th time (counting from 1, in this process)
the code passes ``<point>``, ``<action>`` happens:

- ``kill`` (the default): the process sends itself SIGKILL, as the OOM killer or ``kill -9``
  would: no ``finally``, no flush, no ledger commit.
- ``enospc``: ``OSError(ENOSPC, "No space left on device")`` is raised there, as a full disk would.
- ``term``: the process sends itself SIGTERM, as a scheduler's timeout or systemd would.

Points (one line each in the code, marked ``# test hook``):

- ``before_request`` (sender/line_client.py): a request is about to be sent.
- ``after_response`` (sender/push.py): LINE's answer to a request is in, not yet queued for the
  ledger.
- ``ledger_write`` (sender/ledger.py): inside the ledger transaction, after the outcome rows
  were inserted and before their keys: the middle of a group commit.
- ``dbt_connect`` (sender/dbt_private_files.py): a dbt process is about to open the database
  (a ``kill`` there is what the out-of-memory killer does to a build).
- ``lock_write`` (sender/run_locks.py): ``sender run`` writes its pid into a lock file (an
  ``enospc`` there is a disk so full that not even these few bytes fit).
- ``database_copy`` (sender/compaction.py): ``sender backup`` or ``compact`` has made its new
  file and is about to copy the database into it.

Several specifications may be given, separated by commas. When the variable is unset or empty
``hit`` returns at once and does nothing. No command-line option reaches this hook: only the
environment of the process does, and a production job has no reason to set it.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections import Counter

ENV_VAR = "LINE_CAPI_FAULT_POINT"
POINTS = (
    "before_request",
    "after_response",
    "ledger_write",
    "dbt_connect",
    "lock_write",
    "database_copy",
)
ACTIONS = ("kill", "enospc", "crash", "term")

_lock = threading.Lock()
_counts: Counter[str] = Counter()
_parsed: tuple[str, dict[str, tuple[int, str]]] = ("", {})


def _parse(raw: str) -> dict[str, tuple[int, str]]:
    specs: dict[str, tuple[int, str]] = {}
    for spec in filter(None, (part.strip() for part in raw.split(","))):
        point, _, rest = spec.partition(":")
        count, _, action = rest.partition(":")
        action = action or "kill"
        if point not in POINTS or not count.isdigit() or int(count) < 1 or action not in ACTIONS:
            raise ValueError(
                f"{ENV_VAR}={raw!r}: use POINT:N[:ACTION], POINT one of {', '.join(POINTS)}, "
                f"ACTION one of {', '.join(ACTIONS)}"
            )
        specs[point] = (int(count), action)
    return specs


def hit(point: str) -> None:
    """Mark that ``point`` is passed; kill or fail here if the environment asks for it."""
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return
    global _parsed
    with _lock:
        if _parsed[0] != raw:
            _parsed = (raw, _parse(raw))
            _counts.clear()
        spec = _parsed[1].get(point)
        if spec is None:
            return
        _counts[point] += 1
        if _counts[point] != spec[0]:
            return
    if spec[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if spec[1] == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if spec[1] == "crash":  # stands for a bug: an exception nobody expects
        raise RuntimeError(f"fault point {point}: a simulated bug")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

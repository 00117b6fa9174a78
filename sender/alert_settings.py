"""The alert settings: the webhook, the heartbeat URL and the thresholds, from the environment.

Each threshold is one environment variable (``THRESHOLDS``), documented in docs/monitoring.md; a
malformed one is a ConfigError of one line that never repeats the webhook's URL, a secret. The
findings that use them are in sender/alerts.py (a job's exit, the ledger) and
sender/coverage_alerts.py (the identifier coverage, build after build).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sender.heartbeat import HEARTBEAT_ENV, heartbeat_from_env
from sender.secret_env import FILE_SUFFIX, read_secret
from sender.settings import ConfigError, Secret, validate_secret_url

WEBHOOK_ENV = "LINE_CAPI_ALERT_WEBHOOK"
# What sender run keeps from the commands it starts: it alone alerts and pings, once for the job.
RUN_ONLY_ENV = tuple(
    name + suffix for name in (WEBHOOK_ENV, HEARTBEAT_ENV) for suffix in ("", FILE_SUFFIX)
)

Say = Callable[[str], None]


def webhook_from_env(env: Mapping[str, str], notice: Say | None = None) -> Secret | None:
    """The webhook URL, a secret: ``LINE_CAPI_ALERT_WEBHOOK``, or the file that
    ``LINE_CAPI_ALERT_WEBHOOK_FILE`` names (``notice`` hears of a file others can read)."""
    return read_secret(WEBHOOK_ENV, environ=env, notice=notice)


@dataclass(frozen=True)
class AlertSettings:
    webhook: Secret | None = None
    heartbeat: Secret | None = None  # pinged after a job that exited 0 (sender/heartbeat.py)
    pending_runs: int = 3
    share_drop: float = 0.5
    share_builds: int = 24
    min_sendable: int = 50
    min_share: float = 0.1
    empty_builds: int = 3
    rejected_share: float = 0.9
    repeat_runs: int = 24


# (environment variable, AlertSettings field, kind): a "count" from 1 to MAX_COUNT, a "fraction"
# in (0, 1)
THRESHOLDS = (
    ("LINE_CAPI_ALERT_PENDING_RUNS", "pending_runs", "count"),
    ("LINE_CAPI_ALERT_SHARE_DROP", "share_drop", "fraction"),
    ("LINE_CAPI_ALERT_SHARE_BUILDS", "share_builds", "count"),
    ("LINE_CAPI_ALERT_MIN_SENDABLE", "min_sendable", "count"),
    ("LINE_CAPI_ALERT_MIN_SHARE", "min_share", "fraction"),
    ("LINE_CAPI_ALERT_EMPTY_BUILDS", "empty_builds", "count"),
    ("LINE_CAPI_ALERT_REJECTED_SHARE", "rejected_share", "fraction"),
    ("LINE_CAPI_ALERT_REPEAT_RUNS", "repeat_runs", "count"),
)


# Runs or builds: a million is over a century of hourly runs. The counts go into SQL as
# integers, and a larger one (beyond 64 bits) made every alert check fail.
MAX_COUNT = 1_000_000


def _threshold(name: str, text: str, kind: str) -> int | float:
    value = text.strip()
    if kind == "count":
        if not re.fullmatch(r"[0-9]{1,7}", value) or not 1 <= int(value) <= MAX_COUNT:
            raise ConfigError(f"{name}={value!r} must be a whole number from 1 to {MAX_COUNT:,}")
        return int(value)
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number < 1:
        raise ConfigError(f"{name}={value!r} must be a number between 0 and 1 (such as 0.5)")
    return number


def validate_webhook(webhook: Secret) -> Secret:
    """https, or http to a loopback host. Errors never repeat the URL: it is a secret."""
    return validate_secret_url(webhook, WEBHOOK_ENV, "the alert webhook")


def load_settings(env: Mapping[str, str], notice: Say | None = None) -> AlertSettings:
    """The alert settings from the environment; ConfigError (one line) when one is malformed.
    ``notice`` gets a warning about a webhook or heartbeat URL file other users can read: a
    Slack webhook's URL is all it takes to post to its channel."""
    values: dict = {}
    webhook = webhook_from_env(env, notice)
    if webhook is not None and webhook.reveal().strip():
        values["webhook"] = validate_webhook(webhook)
    values["heartbeat"] = heartbeat_from_env(env, notice)
    for name, field, kind in THRESHOLDS:
        text = env.get(name, "")
        if text.strip():
            values[field] = _threshold(name, text, kind)
    return AlertSettings(**values)

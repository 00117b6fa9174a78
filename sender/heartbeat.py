"""The heartbeat: after each job that succeeded, one GET to the URL of an outside monitor that
alerts when the pings stop (healthchecks.io, Cronitor, Better Stack, Uptime Kuma's push monitor).

The alerts (sender/alerts.py) are sent by a run, so a job that no longer runs sends none: the
machine is off, the crontab was replaced, the timer or the workflow disabled, the container no
longer scheduled, or every run dies before it can say so. Only a monitor that expects a ping every
hour hears of that. A run pings only when it exited 0 (OK): a run that failed, left events
pending or found the previous one still going does not, so that pings stop while LINE is down or
the export is stale too, and the monitor's grace time decides how long that may last.

The URL is a secret, as the webhook is (anyone who has it can keep the monitor quiet): read from
LINE_CAPI_HEARTBEAT_URL or the file LINE_CAPI_HEARTBEAT_URL_FILE names, https (http only to a
loopback host), never printed. A ping that fails is one warning line; it never changes the exit
code. docs/monitoring.md, "Heartbeat".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sender.exit_codes import ExitCode
from sender.monitoring_request import request_once
from sender.secret_env import read_secret
from sender.settings import Secret, validate_secret_url

HEARTBEAT_ENV = "LINE_CAPI_HEARTBEAT_URL"


def heartbeat_from_env(
    env: Mapping[str, str], notice: Callable[[str], None] | None = None
) -> Secret | None:
    """The heartbeat URL, checked; None when it is not set. ConfigError (one line, without the
    URL) when it is malformed or its file cannot be read; ``notice`` hears of a file others can
    read."""
    url = read_secret(HEARTBEAT_ENV, environ=env, notice=notice)
    if url is None or not url.reveal().strip():
        return None
    return validate_secret_url(url, HEARTBEAT_ENV, "the heartbeat URL")


def beat(
    url: Secret | None, exit_code: int, say: Callable[[str], None], *, alert_lost: bool = False
) -> None:
    """The ping of a job that ended with ``exit_code``: sent after exit 0 only, then one line
    that says whether it was delivered. Not sent when the job's alert could not be delivered
    (``alert_lost``): the outside monitor then reports the job, and someone looks."""
    if url is None or exit_code != ExitCode.OK:
        return
    if alert_lost:
        say(
            "warning: heartbeat not sent: the alert webhook did not take this run's alert (the"
            " alert: lines above), so the outside monitor reports the job instead"
        )
        return
    try:
        failure = request_once("GET", url)
    except Exception as exc:  # a ping must never fail the job that succeeded
        failure = f"failed ({type(exc).__name__})"
    if failure:
        say(f"warning: heartbeat not delivered: the heartbeat URL {failure}")
    else:
        say("heartbeat sent")

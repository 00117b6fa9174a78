"""Helpers for the tests of the scheduled job: exports whose times follow the clock, and running
``sender run`` on the real project with its own database, target folder and log."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

from pipeline_fixtures import ROOT, write_export
from sender_fixtures import TAG_ID, TOKEN, run_cli

HOUR = 3600


def iso(unix: float, with_offset: bool = True) -> str:
    """Unix seconds as ISO 8601 in Japan time; without its offset, as a BigQuery DATETIME."""
    text = dt.datetime.fromtimestamp(int(unix), dt.timezone(dt.timedelta(hours=9))).isoformat()
    return text if with_offset else text.removesuffix("+09:00")


def clock_export(
    directory: Path,
    conversions: dict[str, float],
    newest_hours: float,
    with_offset: bool = True,
    written_hours: float | None = None,
    now: float | None = None,
) -> Path:
    """An export whose newest event is ``newest_hours`` old, its files written ``written_hours``
    ago (default: right after that event, as an export that stopped then); ``conversions`` maps
    an order id to its age in hours. Every buyer has an email, so every conversion is sendable.
    Times are Japan time, with their offset or (``with_offset=False``) without it. Ages count
    from ``now`` (Unix seconds; default: the clock)."""
    now = time.time() if now is None else now
    rows, views, users = [], [], []
    for i, (key, age) in enumerate(conversions.items()):
        at = iso(now - age * HOUR, with_offset)
        rows.append(
            {
                "event_name": "buy",
                "user_id": f"u{i}",
                "transaction_id": key,
                "sync_date": at,
                "pv_id": f"pv-{i}",
            }
        )
        views.append(
            {
                "user_id": f"u{i}",
                "sync_date": at,
                "pv_id": f"pv-{i}",
                "url": "https://shop.example.jp/thanks",
            }
        )
        users.append({"user_id": f"u{i}", "email": f"buyer{i}@example.jp"})
    # the newest event of each table: a page view and a non-conversion event
    newest = iso(now - newest_hours * HOUR, with_offset)
    rows.append(
        {
            "event_name": "view",
            "user_id": "u-last",
            "transaction_id": "",
            "sync_date": newest,
            "pv_id": "pv-last",
        }
    )
    views.append(
        {
            "user_id": "u-last",
            "sync_date": newest,
            "pv_id": "pv-last",
            "url": "https://shop.example.jp/",
        }
    )
    export = write_export(
        directory, {"conversions": rows, "page_views": views, "user_master": users}
    )
    written = now - (newest_hours if written_hours is None else written_hours) * HOUR
    for path in export.rglob("*"):
        os.utime(path, (written, written))
    return export


def dbt_args(tmp: Path) -> list[str]:
    """dbt's own folders under tmp, so that tests never share them."""
    profiles = tmp / "profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copy(ROOT / "profiles.example.yml", profiles / "profiles.yml")
    return [
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
        "--profiles-dir",
        str(profiles),
    ]


def sender_run(
    tmp: Path,
    url: str,
    *args: str,
    export: Path | None = None,
    vars_: str | list[str] = "",
    dbt: tuple[str, ...] = (),
    env: dict | None = None,
    timeout: float = 300,
    reader_gone: bool = False,
    cwd: Path | None = None,
):
    """`sender run` on the project in ROOT, as a scheduler starts it, ``dbt`` added to the dbt
    options after `--` (``reader_gone``, ``cwd``: see run_cli)."""
    full_env = {
        "LINE_CAPI_DUCKDB": str(tmp / "line_capi.duckdb"),
        "LINE_TAG_ID": TAG_ID,
        "LINE_ACCESS_TOKEN": TOKEN,
        "LINE_CAPI_ENDPOINT": url,
        "KARTE_EXPORT_DIR": str(export) if export else "",
        **(env or {}),
    }
    # several --vars as a job passes its site's vars and a catch-up adds its own
    extra = [
        arg
        for text in ([vars_] if isinstance(vars_, str) else vars_)
        if text
        for arg in ("--vars", text)
    ]
    return run_cli(
        ["run", *args, "--", *dbt_args(tmp), *dbt, *extra],
        full_env,
        timeout=timeout,
        reader_gone=reader_gone,
        cwd=cwd,
    )

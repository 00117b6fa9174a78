"""What the send ledger holds, read back for ``sender status``: each destination's events by
latest status, its test sends and pending events, and the last push (sender.status prints it).
The ledger is written by sender.ledger; its tables are in sender.database."""

# ruff: noqa: S608 - SQL is built from this package's constant table names.

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from sender.database import BATCHES_TABLE, KEYS_TABLE, RUNS_TABLE, STATUSES, fetch_one
from sender.destinations import latest_destination_id, list_destinations
from sender.pending_rows import JOIN_MEMORY_BYTES, count_pending, memory_at_least


@dataclass(frozen=True)
class DestinationStatus:
    destination_id: int
    endpoint: str
    tag_id: str
    counts: dict[str, int]  # latest status of each key, events sent for real
    test_events: int  # keys sent with --test
    pending: int | None  # None when the payload table is missing

    def as_dict(self) -> dict:
        return {
            "destination_id": self.destination_id,
            "endpoint": self.endpoint,
            "tag_id": self.tag_id,
            "counts": self.counts,
            "test_events": self.test_events,
            "pending": self.pending,
        }


@dataclass(frozen=True)
class LedgerStatus:
    destinations: list[DestinationStatus]  # in the order they were first used
    latest_destination_id: int | None  # the destination of the last push
    pending: int | None  # at the latest destination (every row before any push); None: no payload
    last_run: dict | None

    @property
    def latest(self) -> DestinationStatus | None:
        for destination in self.destinations:
            if destination.destination_id == self.latest_destination_id:
                return destination
        return None


# Recorded outcomes per destination and status, from the narrow keys table: an aggregation on
# integers (outcome ids), not on the keys' texts, so it stays fast at tens of millions of keys.
_OUTCOME_COUNTS_SQL = f"""
select sent.destination_id, batch.status, sum(sent.events)::bigint
from (
    select destination_id, outcome_id, count(*) as events
    from {KEYS_TABLE}
    where not is_test
    group by all
) as sent
inner join {BATCHES_TABLE} as batch on sent.outcome_id = batch.outcome_id
group by all
"""

# The keys a --resend run recorded again: each counts once, under its latest outcome, so their
# other outcomes are taken back (delta -1 each) and the latest one added (+1).
_RESENT_CORRECTION_SQL = f"""
with resent as (
    select distinct sent.destination_id, sent.event_name, sent.deduplication_key
    from {KEYS_TABLE} as sent
    inner join {BATCHES_TABLE} as batch on sent.outcome_id = batch.outcome_id
    inner join {RUNS_TABLE} as run on batch.run_id = run.run_id
    where run.is_resend and not sent.is_test
),
outcomes as (
    select sent.destination_id, sent.event_name, sent.deduplication_key, batch.status,
        batch.sent_at
    from {KEYS_TABLE} as sent
    inner join {BATCHES_TABLE} as batch on sent.outcome_id = batch.outcome_id
    semi join resent
        on sent.destination_id = resent.destination_id
        and sent.event_name = resent.event_name
        and sent.deduplication_key = resent.deduplication_key
    where not sent.is_test
)
select destination_id, status, sum(delta)::bigint
from (
    select destination_id, status, -count(*) as delta from outcomes group by all
    union all
    select destination_id, arg_max(status, sent_at), 1
    from outcomes
    group by destination_id, event_name, deduplication_key
)
group by all
"""


def _destination_counts(con: duckdb.DuckDBPyConnection) -> dict[int, dict[str, int]]:
    """Keys per destination and latest status, test sends apart.

    The pending rule records a key once at a destination, except when ``--resend`` sends it
    again, or when it comes back after it left the ledger window (sender.pending_rows), which
    makes it a new send. So the outcomes are counted, without grouping tens of millions of keys,
    and only the keys of ``--resend`` runs are grouped, to count each of them once.
    """
    counts: dict[int, dict[str, int]] = {}
    resent = fetch_one(
        con,
        f"select exists (select 1 from {RUNS_TABLE} where is_resend and not is_test)",
    )
    queries = [_OUTCOME_COUNTS_SQL] + ([_RESENT_CORRECTION_SQL] if resent and resent[0] else [])
    cursor = con.cursor()
    try:
        with memory_at_least(cursor, JOIN_MEMORY_BYTES):  # the resent keys' join and grouping
            for query in queries:
                for destination, status, n in cursor.execute(query).fetchall():
                    per_status = counts.setdefault(int(destination), dict.fromkeys(STATUSES, 0))
                    per_status[status] += int(n)
    finally:
        cursor.close()
    return counts


def read_status(
    con: duckdb.DuckDBPyConnection, *, has_ledger: bool, has_payload: bool
) -> LedgerStatus:
    destinations: list[DestinationStatus] = []
    latest = None
    last_run = None
    if has_ledger:
        counts = _destination_counts(con)
        tests = dict(
            con.execute(
                "select destination_id, count(distinct (event_name, deduplication_key))"
                f" from {KEYS_TABLE} where is_test group by destination_id"
            ).fetchall()
        )
        latest = latest_destination_id(con)
        for destination, endpoint, tag_id in list_destinations(con):
            destinations.append(
                DestinationStatus(
                    destination_id=destination,
                    endpoint=endpoint,
                    tag_id=tag_id,
                    counts=counts.get(destination, dict.fromkeys(STATUSES, 0)),
                    test_events=int(tests.get(destination, 0)),
                    pending=count_pending(con, destination_id=destination) if has_payload else None,
                )
            )
        cursor = con.execute(f"select * from {RUNS_TABLE} order by started_at desc limit 1")
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        if rows:
            last_run = {
                name: (value.isoformat(sep=" ") + "Z" if isinstance(value, dt.datetime) else value)
                for name, value in zip(names, rows[0], strict=True)
            }
    pending = None
    if has_payload:
        # the latest destination's count, when it was just made above
        known = [d.pending for d in destinations if d.destination_id == latest]
        pending = known[0] if known else count_pending(con, destination_id=latest)
    return LedgerStatus(
        destinations=destinations,
        latest_destination_id=latest,
        pending=pending,
        last_run=last_run,
    )

"""The ledger window and retention: which recorded keys count, and that deleting the old ones
never makes an event pending again."""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sender_fixtures import ledger_rows, make_event, mock_server, push_now, write_payload

from sender.database import connect, ensure_ledger
from sender.ledger_retention import RETENTION_SECONDS, prune, prune_is_due
from sender.pending_rows import find_pending, iter_pending, pending_sql

DAY = 86_400
HOUR = 3_600


def record(con, keys, *, recorded_at, destination_id=1, is_test=False, outcome=0):
    """Key rows as the ledger writer appends them: (key, event_timestamp) recorded at a time."""
    outcome_id = int(recorded_at) * 1_000_000_000 + outcome
    con.execute(
        "insert into line_capi_send_batches values (?, ?, 'r', 'accepted', 202, 1, ?, ?,"
        " make_timestamp(? // 1000), null)",
        [outcome_id, f"b{outcome}", len(keys), is_test, outcome_id],
    )
    con.register(
        "_keys",
        pa.table(
            {
                "deduplication_key": [k for k, _ in keys],
                "event_timestamp": pa.array([t for _, t in keys], pa.int64()),
            }
        ),
    )
    con.execute(
        "insert into line_capi_send_keys select 'Purchase', deduplication_key, event_timestamp,"
        f" {outcome_id}, {is_test}, {destination_id} from _keys"
    )
    con.unregister("_keys")


def pending_keys(con, destination_id=1, now=None):
    """The pending keys as push finds them, and as the SQL rule (status, preview) finds them."""
    found = find_pending(con, destination_id=destination_id, now=now)
    pushed = {
        key
        for chunk in iter_pending(con, pending=found, chunk_rows=7)
        for key in chunk.column("deduplication_key").to_pylist()
    }
    sql = pending_sql(destination_id=destination_id, columns="deduplication_key")
    assert pushed == {row[0] for row in con.execute(sql).fetchall()}
    return pushed


def payload_db(tmp_path, events):
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, events)
    con = connect(db, read_only=False)
    ensure_ledger(con)
    return db, con


def test_a_key_counts_when_its_timestamp_moved_forward_within_the_window(tmp_path):
    now = int(time.time())
    _, con = payload_db(tmp_path, [make_event(i, ts=now - 2 * HOUR) for i in range(4)])
    # recorded a day ago while its earliest export row was in the lookback window; that row has
    # left it, so the payload's event_timestamp is now that of a later row of the same key
    record(con, [("order-0000000", now - 26 * HOUR)], recorded_at=now - 25 * HOUR)
    # a rebuild moved another one back by 9 hours (a time zone fixed)
    record(con, [("order-0000001", now + 7 * HOUR)], recorded_at=now - HOUR, outcome=1)
    assert pending_keys(con) == {"order-0000002", "order-0000003"}
    con.close()


def test_a_key_that_comes_back_after_the_window_is_sent_again(tmp_path):
    now = int(time.time())
    _, con = payload_db(tmp_path, [make_event(i, ts=now - 2 * HOUR) for i in range(2)])
    # recorded 40 days ago for an event of then: the same key is a new event of today
    record(con, [("order-0000000", now - 40 * DAY)], recorded_at=now - 40 * DAY + HOUR)
    assert pending_keys(con) == {"order-0000000", "order-0000001"}
    con.close()


def test_retention_deletes_the_keys_old_by_both_clocks_and_their_outcomes(tmp_path):
    now = int(time.time())
    _, con = payload_db(tmp_path, [make_event(i, ts=now - HOUR) for i in range(3)])
    old = now - RETENTION_SECONDS - 2 * DAY
    record(con, [("gone-1", old), ("gone-2", old)], recorded_at=old + HOUR)
    record(con, [("recorded-late", old)], recorded_at=now - DAY, outcome=1)
    record(con, [("event-ahead", now + 400 * DAY)], recorded_at=old + HOUR, outcome=2)
    record(con, [("order-0000000", now - HOUR)], recorded_at=now - HOUR, outcome=3)
    before = pending_keys(con)
    assert prune_is_due(con, now)
    pruned = prune(con, now)
    assert (pruned.keys, pruned.outcomes) == (2, 1)
    kept = {
        r[0] for r in con.execute("select deduplication_key from line_capi_send_keys").fetchall()
    }
    assert kept == {"recorded-late", "event-ahead", "order-0000000"}
    assert con.execute("select count(*) from line_capi_send_batches").fetchall() == [(3,)]
    assert pending_keys(con) == before == {"order-0000001", "order-0000002"}
    assert not prune_is_due(con, now)
    con.close()


def test_retention_waits_until_a_day_of_keys_has_passed_it(tmp_path):
    now = int(time.time())
    _, con = payload_db(tmp_path, [make_event(0, ts=now - HOUR)])
    just_past = now - RETENTION_SECONDS - HOUR
    record(con, [("a", just_past)], recorded_at=just_past)
    assert not prune_is_due(con, now)  # less than a day's worth: the next runs will take it
    assert prune_is_due(con, now + DAY)
    con.close()


# Times on a half-hour grid, so that no value sits within a second of a bound computed from
# "now" by Python in one place and by DuckDB in another.
def _grid(now: int, low_hours: int, high_hours: int):
    return st.integers(low_hours, high_hours).map(lambda h: now - h * HOUR - HOUR // 2)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_the_pending_set_is_the_same_with_and_without_retention(tmp_path_factory, data):
    now = int(time.time())
    names = [f"k{i}" for i in range(12)]
    events = data.draw(
        st.dictionaries(st.sampled_from(names), _grid(now, -20, 100 * 24), min_size=1)
    )
    recorded = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(names),
                _grid(now, -400 * 24, 400 * 24),  # the event time it was recorded with
                _grid(now, 0, 400 * 24),  # when
                st.sampled_from([1, 1, 1, 2]),  # destination
                st.booleans(),  # a test send: never counts
            ),
            max_size=30,
        )
    )
    tmp = tmp_path_factory.mktemp("retention")
    _, con = payload_db(tmp, [make_event(0, ts=t, key=k) for k, t in events.items()])
    for i, (key, event_time, recorded_at, destination, is_test) in enumerate(recorded):
        record(
            con,
            [(key, event_time)],
            recorded_at=recorded_at,
            destination_id=destination,
            is_test=is_test,
            outcome=i,
        )
    before = {d: pending_keys(con, d) for d in (1, 2)}
    prune(con, now)
    assert {d: pending_keys(con, d) for d in (1, 2)} == before
    con.close()


def test_push_applies_retention_and_the_log_keeps_what_counts(tmp_path):
    now = int(time.time())
    db = tmp_path / "line_capi.duckdb"
    write_payload(db, [make_event(i, ts=now - HOUR) for i in range(30)])
    with mock_server() as srv:
        first = push_now(db, srv.url)
        assert first.accepted == 30
        con = duckdb.connect(str(db))
        old = now - RETENTION_SECONDS - 3 * DAY
        record(con, [(f"old-{i}", old) for i in range(5)], recorded_at=old, outcome=7)
        con.close()
        again = push_now(db, srv.url)
        assert (again.pending, again.requests) == (0, 0)
    keys = {r[1] for r in ledger_rows(db)}
    assert keys == {f"order-{i:07d}" for i in range(30)}  # the old rows are gone, no others
    con = connect(db, read_only=True)
    assert not prune_is_due(con)
    con.close()

"""Fill the send ledger of a database with the keys of earlier runs, in SQL, for the benchmark.

The tables are created by the sender's own DDL (``sender.database.ensure_ledger``) and the
destinations by its own function, so the rows are those a long-running job would have written:
``keys`` key rows recorded over the last ``days`` days (inside the ledger's retention, as the
retention leaves a ledger), one outcome per 5,000 keys, 95% of them at the destination of
``endpoint`` / ``tag_id`` and 5% at another LINE Tag. Keys look like the payload's
(``ORD-`` and ten digits, interleaved with the payload's keys, then a suffix that no payload key
has), so every payload row stays pending and DuckDB cannot skip the ledger by key range.

    python bench/prefill_ledger.py DATABASE_FILE ENDPOINT TAG_ID --keys 30000000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sender.database import (  # noqa: E402 - the repository root is put on the path above
    BATCHES_TABLE,
    KEYS_TABLE,
    connect,
    ensure_ledger,
)
from sender.destinations import destination_id  # noqa: E402

OTHER_TAG = "6ba7b810-9dad-41d1-80b4-00c04fd430c8"
BATCH_KEYS = 5_000


def prefill(database: Path, endpoint: str, tag_id: str, keys: int, *, days: int = 119) -> dict:
    start = time.perf_counter()
    con = connect(database, read_only=False, memory_limit="2GB")
    try:
        ensure_ledger(con)
        here = destination_id(con, endpoint, tag_id, create=True)
        other = destination_id(con, "https://conversion-api.tr.line.me", OTHER_TAG, create=True)
        now = int(time.time())
        span = days * 86_400 - 3_600  # the newest an hour old
        first = now - days * 86_400
        # one outcome per BATCH_KEYS keys; event times spread evenly, recorded 30 min later
        con.execute(
            f"""
            create temp macro outcome_of(b) as
                ({first} + (b * {BATCH_KEYS}) * {span} // {int(keys)} + 1800)::bigint
                * 1000000000 + b;
            create temp macro destination_of(b) as
                case when b % 20 = 19 then {other} else {here} end;
            """
        )
        con.execute(
            f"""
            insert into {BATCHES_TABLE}
            select
                outcome_of(b), 'prefill-' || b, 'prefill-' || (b // 100), 'accepted', 202, 1,
                {BATCH_KEYS}, false, make_timestamp(outcome_of(b) // 1000), null
            from range(({int(keys)} + {BATCH_KEYS} - 1) // {BATCH_KEYS}) as t(b)
            """
        )
        # a projection of range(): the rows are appended in order, oldest first, as runs append
        con.execute(
            f"""
            insert into {KEYS_TABLE}
            select
                case when i % 10 = 0 then 'Purchase' else 'Conversion' end,
                'ORD-' || lpad((hash(i) % 10000000)::varchar, 10, '0') || '-p' || i,
                {first} + i * {span} // {int(keys)},
                outcome_of(i // {BATCH_KEYS}),
                false,
                destination_of(i // {BATCH_KEYS})
            from range({int(keys)}) as t(i)
            """
        )
        con.execute("checkpoint")
    finally:
        con.close()
    return {"seconds": time.perf_counter() - start, "keys": int(keys), "days": days}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("tag_id")
    parser.add_argument("--keys", type=int, default=30_000_000)
    parser.add_argument("--days", type=int, default=119)
    args = parser.parse_args(argv)
    print(json.dumps(prefill(args.database, args.endpoint, args.tag_id, args.keys, days=args.days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

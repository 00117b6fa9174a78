"""The transport floor: the fastest bare loop that takes the sender's bytes from the database
to the wire on one HTTP session.

One streaming scan of ``line_capi_payload`` in table order (as the sender reads it), cut into
batches of ``batch_size`` payload texts; each batch joined into one request body ``[p1,p2,...]``
by Arrow (``binary_join``: no Python per event; the sender's own function) and posted in parts on
one kept-alive ``requests.Session``, one request after the other. No ledger, no retries, no
concurrency, no thread: the least a sender must do, read, join and post. ``bench/run.py`` reads
its rate at the sink (bench/sink.py), as it reads the sender's: "sender / floor" compares them.

    python bench/transport_floor.py DATABASE_FILE URL [--batch-size 5000] [--prebuilt]
    # prints {"seconds": s, "events": n, "bytes": n, "requests": n}  (seconds: the loop alone)

``--prebuilt`` reads and joins everything before the loop and posts the finished bodies: the
wire alone, for reference (no sender that reads the database can reach it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import requests

# the sender's own body: the payload texts joined by Arrow, sent in parts (no copy into one bytes)
from sender.request_body import Body, build_body

_HEADERS = {"Content-Type": "application/json", "X-Line-TagAccessToken": "bench"}


def batches(con: duckdb.DuckDBPyConnection, batch_size: int) -> Iterator[pa.Array]:
    """The payload column in table order, ``batch_size`` texts at a time."""
    reader = con.sql("select payload from line_capi_payload").to_arrow_reader(batch_size)
    held: list[pa.Array] = []
    count = 0
    for batch in reader:
        held.append(batch.column(0))
        count += batch.num_rows
        while count >= batch_size:  # the scan's batches end at row groups: re-cut them
            joined = pa.concat_arrays(held) if len(held) > 1 else held[0]
            yield joined.slice(0, batch_size)
            rest = joined.slice(batch_size)
            held, count = ([rest] if len(rest) else []), len(rest)
    if count:
        yield pa.concat_arrays(held) if len(held) > 1 else held[0]


def post(session: requests.Session, url: str, data: Body) -> None:
    response = session.post(url, data=data, headers=_HEADERS, timeout=60)
    if response.status_code != 202:
        raise SystemExit(f"sink answered {response.status_code}")


def run(database: str, url: str, batch_size: int, *, prebuilt: bool) -> dict:
    con = duckdb.connect(database, read_only=True)
    session = requests.Session()
    session.trust_env = False
    events = sent_bytes = requests_made = 0
    if prebuilt:
        bodies = [(len(texts), build_body(texts)) for texts in batches(con, batch_size)]
        start = time.perf_counter()
    else:
        start = time.perf_counter()
        bodies = ((len(texts), build_body(texts)) for texts in batches(con, batch_size))
    for count, data in bodies:
        post(session, url, data)
        events += count
        sent_bytes += len(data)
        requests_made += 1
    seconds = time.perf_counter() - start
    session.close()
    con.close()
    return {"seconds": seconds, "events": events, "bytes": sent_bytes, "requests": requests_made}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("url")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--prebuilt", action="store_true", help="join every body before the loop")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.database, args.url, args.batch_size, prebuilt=args.prebuilt)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The SQL floor: the least work any pipeline over the same export must do, as ONE DuckDB statement.

It reads the four Parquet inputs, aggregates page views and LINE logins per user (one ``max()``
of a column each), hashes each user's email and phone with ``sha256``, joins these to the
conversions and writes a table with one row per conversion, into a fresh database file (as dbt
writes one). ``dbt run`` on the same export divided by this time is the "build / floor" ratio.

    python bench/floor.py EXPORT_DIR DATABASE_FILE   # prints {"seconds": s, "rows": n}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import duckdb

FLOOR_SQL = """
create table floor_payload as
with
page_views as (
    select user_id, max(sync_date) as last_page_view
    from read_parquet('{dir}/page_views.parquet')
    group by user_id
),
line_users as (
    select user_id, max(line_user_id) as line_user_id
    from read_parquet('{dir}/line_users.parquet')
    group by user_id
),
users as (
    -- max(): a user with two master rows still joins once, so one row per conversion
    select user_id, max(sha256(email)) as email_sha256, max(sha256(phone)) as phone_sha256
    from read_parquet('{dir}/user_master.parquet')
    group by user_id
)
select
    conversions.*,
    page_views.last_page_view,
    line_users.line_user_id,
    users.email_sha256,
    users.phone_sha256
from read_parquet('{dir}/conversions.parquet') as conversions
left join page_views on page_views.user_id = conversions.user_id
left join line_users on line_users.user_id = conversions.user_id
left join users on users.user_id = conversions.user_id
"""


def run_floor(export_dir: Path, database: Path) -> dict:
    for path in (database, Path(str(database) + ".wal")):
        path.unlink(missing_ok=True)
    con = duckdb.connect(str(database))
    con.execute("set enable_progress_bar = false")
    sql = FLOOR_SQL.format(dir=str(export_dir).replace("'", "''"))
    start = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - start
    rows = con.execute("select count(*) from floor_payload").fetchone()[0]
    con.close()
    return {"seconds": seconds, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    print(json.dumps(run_floor(Path(args[0]), Path(args[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())

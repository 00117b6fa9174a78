"""Copy the newest complete KARTE Datahub export to this machine and point `current` at it.

    python3 datahub/sync_export.py gs://my-bucket/line-capi /srv/karte
    python3 datahub/sync_export.py /mnt/exports/line-capi /srv/karte    # a local or mounted folder

SOURCE holds one folder per run of the Datahub job flow (its export path, e.g.
line-capi/{{YYYYMMDD}}-{{HH}}/), named so that names sort by time: a run's name starts with a
digit, and other folders (a `latest` link, `backfill/`) are not runs. The newest folder that holds
all four tables and has not changed for --settle-minutes (a table exported in parts may still be
getting its last ones) is copied to DEST/<folder>, then DEST/current is swapped to it in one
rename: a build reading DEST/current sees the previous export or the new one, never a
half-copied one.
Older copies beyond --keep are deleted; nothing else in DEST is: only folders holding all four
tables count as copies, and a DEST that already holds files the sync did not write is refused.
Cloud Storage is read with the Google Cloud CLI (`gcloud storage`), with the machine's own
credentials. Everything written under DEST is its owner's only (files 0600, folders 0700,
whatever the umask): the export holds personal data.

Exit codes: 0 synced (or already current); 1 nothing complete to copy, the copy failed or another
sync is running (DEST/current is left as it was); 2 bad arguments: an empty SOURCE or DEST, a
DEST that is not the sync's own, or one that holds the copies of another SOURCE (two sites given
one DEST: DEST/.sync.source names the SOURCE of its first copy); 130 interrupted (the half-done
copy is deleted). See docs/karte-datahub.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TABLES = ("conversions", "page_views", "line_users", "user_master")
CURRENT = "current"
LOCK = ".sync.lock"
# The SOURCE a DEST is the copy of, written at its first sync: a second site's sync into the same
# DEST would swap `current` to its own export, and its job would send one shop's orders to the
# other's LINE Tag.
SOURCE_RECORD = ".sync.source"
# Minutes a run folder must go unchanged before it is taken: the parts of one table arrive within
# seconds of each other, the four tables within minutes.
SETTLE_MINUTES = 10


def _load_file_modes():
    """The project's owner-only file helpers (sender/file_modes.py, standard library only), read
    from this checkout by path: the sync runs with a plain python3, without the sender installed."""
    path = Path(__file__).resolve().parent.parent / "sender" / "file_modes.py"
    spec = importlib.util.spec_from_file_location("line_capi_file_modes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


file_modes = _load_file_modes()


class SyncError(Exception):
    """A reason to stop, said in one line."""


class NotOwnFolder(SyncError):
    """DEST holds files the sync did not write: a bad argument, not a failed sync."""


def run_names(entries: dict[str, bool]) -> list[str]:
    """The run folders among `entries` (name -> is a folder, links left out), oldest first: their
    names start with the run's date, so a `latest` or `backfill` folder, whose name sorts after
    every date, is never taken for the newest run."""
    return sorted(name for name, is_folder in entries.items() if is_folder and name[:1].isdigit())


def missing_tables(entries: dict[str, bool]) -> list[str]:
    """The tables that none of `entries` (name -> is a folder) holds in a layout the build reads.

    A table is `<table>.csv`, `.csv.gz` or `.parquet`, or split in parts: `<table>-*.csv(.gz)`
    or `<table>-*.parquet` (BigQuery's names for a large export) or a folder `<table>/` of parts.
    """

    def holds(table: str) -> bool:
        for name, is_folder in entries.items():
            if is_folder:
                if name == table:
                    return True
            elif name in (f"{table}.csv", f"{table}.csv.gz", f"{table}.parquet"):
                return True
            elif name.startswith(f"{table}-") and name.endswith((".csv", ".csv.gz", ".parquet")):
                return True
        return False

    return [table for table in TABLES if not holds(table)]


class LocalSource:
    """Run folders in a local or mounted folder."""

    def __init__(self, root: str):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SyncError(f"export source {root} is not a folder")

    def __str__(self) -> str:
        return str(self.root)

    @property
    def identity(self) -> str:
        """The folder however it was named (relative, through a link)."""
        return str(self.root.resolve())

    def top_entries(self) -> dict[str, bool]:
        """The source's own entries (name -> is a folder); a link is no run folder."""
        return {p.name: p.is_dir() and not p.is_symlink() for p in self.root.iterdir()}

    def entries(self, run: str) -> dict[str, bool]:
        return folder_entries(self.root / run)

    def newest_change(self, run: str) -> float | None:
        """When a file of the run last changed (Unix seconds), None when it has none."""
        times = [p.stat().st_mtime for p in (self.root / run).rglob("*") if p.is_file()]
        return max(times, default=None)

    def copy(self, run: str, target: Path) -> None:
        try:
            shutil.copytree(self.root / run, target, dirs_exist_ok=True)
        except (shutil.Error, OSError) as error:
            raise SyncError(f"copying {self.root / run} failed: {first_error(error)}") from None


class CloudStorageSource:
    """Run folders under a gs:// prefix, through the Google Cloud CLI."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def __str__(self) -> str:
        return self.url

    @property
    def identity(self) -> str:
        return self.url

    def top_entries(self) -> dict[str, bool]:
        return dict(listed(self.gcloud("ls", f"{self.url}/"), f"{self.url}/"))

    def entries(self, run: str) -> dict[str, bool]:
        return dict(listed(self.gcloud("ls", f"{self.url}/{run}/"), f"{self.url}/{run}/"))

    def newest_change(self, run: str) -> float | None:
        """When an object of the run was last written (Unix seconds), None when it has none."""
        return newest_listed_time(self.gcloud("ls", "--long", f"{self.url}/{run}/**"))

    def copy(self, run: str, target: Path) -> None:
        self.gcloud("rsync", "--recursive", f"{self.url}/{run}", str(target))

    @staticmethod
    def gcloud(*args: str) -> list[str]:
        try:
            done = subprocess.run(["gcloud", "storage", *args], capture_output=True, text=True)
        except FileNotFoundError:
            raise SyncError(
                "gcloud not found: install the Google Cloud CLI to read gs://"
            ) from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            raise SyncError(f"gcloud storage {args[0]} {args[-1]} failed: {lines[-1]}")
        return done.stdout.splitlines()


def listed(lines: list[str], prefix: str) -> Iterator[tuple[str, bool]]:
    """(name, is a folder) of each line of `gcloud storage ls <prefix>`."""
    for line in lines:
        if line.startswith(prefix) and line != prefix:
            rest = line[len(prefix) :]
            yield rest.rstrip("/"), rest.endswith("/")


def newest_listed_time(lines: list[str]) -> float | None:
    """The newest time of `gcloud storage ls --long` lines (`<size>  <ISO time>  gs://...`)."""
    times = []
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and fields[0].isdigit() and fields[2].startswith("gs://"):
            try:
                stamp = dt.datetime.fromisoformat(fields[1].replace("Z", "+00:00"))
            except ValueError:
                continue
            times.append(stamp.timestamp())
    return max(times, default=None)


def folder_entries(folder: Path) -> dict[str, bool]:
    return {p.name: p.is_dir() for p in folder.iterdir()}


def hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def first_error(error: Exception) -> str:
    """shutil.copytree gathers one error per file: the first one says enough."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        source, _target, reason = error.args[0][0]
        return f"{source}: {reason}"
    return str(error)


def newest_complete_run(source, settle_seconds: float = SETTLE_MINUTES * 60) -> str:
    """The newest run that holds every table and has been still for `settle_seconds`."""
    top = source.top_entries()
    if not missing_tables(top):
        raise SyncError(
            f"export source {source} holds the four tables itself: give the folder above it,"
            " whose sub-folders are the export's runs"
        )
    runs = run_names(top)
    if not runs:
        others = sorted(name for name, is_folder in top.items() if is_folder)
        shown = f" (only {', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
        raise SyncError(
            f"export source {source} holds no run folder, named by its date such as"
            f" 20261130-10{shown if others else ''}"
        )
    skipped = []
    nested = None  # 2026/11/30/10/: a path template of one folder per date part
    for run in reversed(runs):
        entries = source.entries(run)
        missing = missing_tables(entries)
        if missing:
            skipped.append(f"{run} (no {', '.join(missing)})")
            if entries and run_names(entries) == sorted(entries):
                nested = nested or run
            continue
        changed = source.newest_change(run)
        age = time.time() - changed if changed is not None else None
        if age is not None and age < settle_seconds:
            skipped.append(f"{run} (still being written: a file changed {age / 60:.0f} min ago)")
            continue
        return run
    if nested:
        raise SyncError(
            f"no complete export in {source}: {nested} holds dated folders, not the tables: a"
            " run is one folder named by its date and hour, such as 20261130-10 (the export"
            " path line-capi/{{YYYYMMDD}}-{{HH}}/, docs/karte-datahub.md), not nested ones"
        )
    raise SyncError(f"no complete export in {source}: " + "; ".join(skipped[:3]))


def check_own_folder(dest: Path) -> None:
    """Refuse a DEST that already holds files the sync did not write (say the project folder, or
    /srv): the sync deletes old copies in it. Its own DEST holds the lock file from the first sync
    on; a new mount point's `lost+found` is not in the way."""
    if not dest.is_dir() or (dest / LOCK).exists():
        return
    others = sorted(p.name for p in dest.iterdir() if p.name != "lost+found")
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise NotOwnFolder(
            f"{dest} already holds files the sync did not write ({shown}):"
            " give it a new or empty folder of its own, such as /srv/karte"
        )


def check_same_source(dest: Path, source) -> None:
    """Refuse a DEST that holds the copies of another SOURCE (two sites given one KARTE_SYNC_DIR).
    The first sync that copies a run records its SOURCE (record_source)."""
    record = dest / SOURCE_RECORD
    try:
        recorded = record.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return
    if recorded != source.identity:
        raise NotOwnFolder(
            f"{dest} holds the copies of {recorded}, not of {source.identity}: give each"
            " export source a folder of its own (KARTE_SYNC_DIR, and KARTE_EXPORT_DIR=<it>/current,"
            f" in each site's .env); to switch this one to the new source, delete {record}"
        )


def record_source(dest: Path, source) -> None:
    """Write the SOURCE of DEST's copies, once a run was copied (a mistyped SOURCE that copied
    nothing is not remembered), and in a DEST an earlier version synced."""
    record = dest / SOURCE_RECORD
    if not record.exists():
        with file_modes.private_file(record, "w") as out:
            out.write(source.identity + "\n")


@contextmanager
def exclusive(dest: Path) -> Iterator[None]:
    with file_modes.private_file(dest / LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncError(f"another sync into {dest} is running") from None
        yield


def point_current(dest: Path, run: str) -> None:
    """Swap DEST/current to `run` in one rename (a relative link, so DEST can be moved)."""
    staged = dest / f".{CURRENT}.{os.getpid()}"
    staged.unlink(missing_ok=True)
    os.symlink(run, staged)
    os.replace(staged, dest / CURRENT)


def run_folders(dest: Path) -> list[str]:
    """The names of the run folders copied into `dest`, oldest first: the folders that hold all
    four tables, as every copy does before it is moved into place. Anything else a person put in
    DEST is neither pruned nor changed."""
    return sorted(
        p.name
        for p in dest.iterdir()
        if p.is_dir() and not p.is_symlink() and not hidden(p.name) and holds_every_table(p)
    )


def holds_every_table(folder: Path) -> bool:
    try:
        return not missing_tables(folder_entries(folder))
    except OSError:  # a folder we may not read is not one we copied
        return False


def prune(dest: Path, keep: int, current: str) -> None:
    """Delete run folders beyond the newest `keep`, and copies left half-done by a killed sync."""
    runs = run_folders(dest)
    for name in runs[: max(len(runs) - keep, 0)]:
        if name != current:
            shutil.rmtree(dest / name)
    for partial in dest.glob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)


def tighten_runs(dest: Path) -> str | None:
    """Make the run folders already in `dest` their owner's only (an earlier version copied them
    with the source's modes); one line saying so when any was open to others."""
    changed = sum(file_modes.make_tree_private(dest / name) for name in run_folders(dest))
    if not changed:
        return None
    return (
        f"{changed} files and folders of the exports in {dest} were readable by other users:"
        " set to 0600 (folders 0700), as they hold personal data"
    )


def sync(
    source,
    dest: Path,
    keep: int,
    notice=lambda line: None,
    settle_seconds: float = SETTLE_MINUTES * 60,
) -> str:
    """Copy the newest complete run of `source` to `dest` and point `dest/current` at it; every
    file and folder written is its owner's only. `notice` gets a line when older copies were
    tightened."""
    current = dest / CURRENT
    if current.exists() and not current.is_symlink():
        raise SyncError(f"{current} is not a symbolic link: move it away, the sync manages it")
    check_own_folder(dest)
    file_modes.make_private_dir(dest)
    with exclusive(dest):
        check_same_source(dest, source)
        message = tighten_runs(dest)
        if message:
            notice(message)
        run = newest_complete_run(source, settle_seconds)
        target = dest / run
        if current.is_symlink() and os.readlink(current) == run and target.is_dir():
            record_source(dest, source)
            return f"{current} is already {run}"
        if not target.is_dir():
            partial = dest / f".{run}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(mode=file_modes.PRIVATE_DIR)
            # The copy keeps the source's modes (shutil.copytree, gcloud), so it lands inside a
            # private folder and is made private before it is moved out: the export holds
            # plaintext email and phone numbers.
            copied = partial / run
            copied.mkdir(mode=file_modes.PRIVATE_DIR)
            try:
                source.copy(run, copied)
                file_modes.make_tree_private(copied)
                missing = missing_tables(folder_entries(copied))
                if missing:
                    raise SyncError(f"the copy of {run} has no {', '.join(missing)}")
                copied.rename(target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        point_current(dest, run)
        record_source(dest, source)
        prune(dest, keep, run)
    return f"synced {source}/{run} to {target}; {current} -> {run}"


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def given(variable: str):
    """An argparse type for a path that must not be blank: an unset variable in the cron line or
    the systemd unit passes "", which would otherwise mean the current folder. Spaces and line
    breaks around it are dropped: a .env saved with Windows line endings ends each value in a
    carriage return, which would name another folder."""

    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"is empty (is {variable} set in .env?)")
        return text.strip()

    return check


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Copy the newest complete KARTE Datahub export and point DEST/current at it.",
        epilog="example: python3 datahub/sync_export.py gs://my-bucket/line-capi /srv/karte",
    )
    parser.add_argument(
        "source",
        type=given("KARTE_EXPORT_SOURCE"),
        help="gs://bucket/prefix or a folder: one sub-folder per run",
    )
    parser.add_argument(
        "dest",
        type=given("KARTE_SYNC_DIR"),
        help="a local folder of the sync's own; the build reads DEST/current",
    )
    parser.add_argument(
        "--keep", type=positive, default=3, help="run folders to keep in DEST (default 3)"
    )
    parser.add_argument(
        "--settle-minutes",
        type=not_negative,
        default=SETTLE_MINUTES,
        help=f"minutes a run must go unchanged before it is copied (default {SETTLE_MINUTES})",
    )
    args = parser.parse_args(argv)
    file_modes.use_private_umask()  # for everything written below, gcloud's copy included
    try:
        is_gcs = args.source.startswith("gs://")
        source = CloudStorageSource(args.source) if is_gcs else LocalSource(args.source)
        dest = Path(args.dest)
        print(sync(source, dest, args.keep, notice=warn, settle_seconds=args.settle_minutes * 60))
    except NotOwnFolder as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the half-done copy was deleted on the way out
        print("error: interrupted", file=sys.stderr)
        return 130
    except (SyncError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""datahub/sync_export.py, run as the scheduled job runs it, with a local folder as the source."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from pipeline_fixtures import ROOT, SAMPLE_DIR, run_dbt

SCRIPT = ROOT / "datahub" / "sync_export.py"
TABLES = ("conversions", "page_views", "line_users", "user_master")


def sync(source: Path, dest: Path, *options: str) -> subprocess.CompletedProcess:
    """The script as cron runs it: a plain python3 (-I -S: no site-packages, so no sender
    package to import), under the usual umask 022."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), str(source), str(dest), *options],
        capture_output=True,
        text=True,
        timeout=60,
        umask=0o022,
    )


def modes(root: Path) -> dict[str, int]:
    """The permission bits of `root` and of everything under it that is not a link."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def write_run(
    source: Path, run: str, tables=TABLES, text: str = "user_id\n", minutes_ago: float = 60
) -> Path:
    """A run folder of the Datahub job, its files written ``minutes_ago``."""
    folder = source / run
    folder.mkdir(parents=True)
    for table in tables:
        (folder / f"{table}.csv").write_text(f"{run}\n{text}", encoding="utf-8")
    age(folder, minutes_ago)
    return folder


def age(folder: Path, minutes_ago: float) -> None:
    """Set every file under ``folder`` as last written ``minutes_ago``."""
    stamp = time.time() - minutes_ago * 60
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))


def current_run(dest: Path) -> str:
    link = dest / "current"
    assert link.is_symlink()
    return os.readlink(link)


def test_copies_the_newest_complete_run_and_points_current_at_it(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-09")
    write_run(source, "20261130-10")
    write_run(source, "20261130-11", tables=TABLES[:3])  # still being written: no user_master

    done = sync(source, dest)

    assert done.returncode == 0, done.stderr
    assert "current -> 20261130-10" in done.stdout
    assert current_run(dest) == "20261130-10"
    for table in TABLES:
        copied = (dest / "current" / f"{table}.csv").read_text(encoding="utf-8")
        assert copied.startswith("20261130-10\n")
    assert sorted(p.name for p in dest.iterdir()) == [
        ".sync.lock",
        ".sync.source",
        "20261130-10",
        "current",
    ]


def test_a_newer_run_swaps_current_and_old_runs_are_pruned(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    for hour in ("09", "10", "11"):
        write_run(source, f"20261130-{hour}")
        assert sync(source, dest, "--keep", "2").returncode == 0
        assert current_run(dest) == f"20261130-{hour}"
    # The previous export stays whole for a build that resolved current before the swap.
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "20261130-10",
        "20261130-11",
        "current",
    ]
    assert (dest / "20261130-10" / "conversions.csv").read_text().startswith("20261130-10")


def test_a_failed_copy_leaves_current_untouched(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-09")
    assert sync(source, dest).returncode == 0
    broken = write_run(source, "20261130-10")
    (broken / "page_views.csv").unlink()
    (broken / "page_views.csv").symlink_to(tmp_path / "gone.csv")  # unreadable mid-copy

    done = sync(source, dest)

    assert done.returncode == 1
    assert done.stderr.startswith("error: copying ") and "page_views.csv" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert current_run(dest) == "20261130-09"
    assert (dest / "current" / "user_master.csv").read_text().startswith("20261130-09")
    assert sorted(p.name for p in dest.iterdir()) == [
        ".sync.lock",
        ".sync.source",
        "20261130-09",
        "current",
    ]


def test_no_complete_run_is_an_error_that_names_what_is_missing(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10", tables=("conversions", "page_views"))

    done = sync(source, dest)

    assert done.returncode == 1
    assert "no complete export" in done.stderr
    assert "20261130-10 (no line_users, user_master)" in done.stderr
    assert not (dest / "current").exists()


def test_split_exports_and_folders_of_parts_count_as_tables(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    run = source / "20261130-10"
    (run / "page_views").mkdir(parents=True)
    (run / "page_views" / "part-000.csv").write_text("user_id\n")
    (run / "conversions-000000000000.csv").write_text("user_id\n")
    (run / "conversions-000000000001.csv").write_text("user_id\n")
    (run / "line_users.csv.gz").write_bytes(b"")
    (run / "user_master-000000000000.parquet").write_bytes(b"")  # BigQuery's Parquet parts
    age(run, 60)

    done = sync(source, dest)

    assert done.returncode == 0, done.stderr
    assert (dest / "current" / "page_views" / "part-000.csv").is_file()
    assert (dest / "current" / "conversions-000000000001.csv").is_file()
    assert (dest / "current" / "user_master-000000000000.parquet").is_file()


def test_a_run_still_getting_its_parts_waits_until_it_has_settled(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10")
    # the newest run has every table, but its page views are still arriving in parts
    run = write_run(source, "20261130-11", tables=TABLES[:1] + TABLES[2:])
    (run / "page_views-000000000000.csv").write_text("user_id\n")
    age(run, 60)
    (run / "page_views-000000000001.csv").write_text("user_id\n")  # just now

    done = sync(source, dest)
    assert done.returncode == 0, done.stderr
    assert current_run(dest) == "20261130-10"

    done = sync(source, dest, "--settle-minutes", "0")
    assert done.returncode == 0, done.stderr
    assert current_run(dest) == "20261130-11"

    only_unsettled = tmp_path / "unsettled"
    write_run(only_unsettled, "20261130-12", minutes_ago=2)
    done = sync(only_unsettled, tmp_path / "dest2")
    assert done.returncode == 1
    expected = f"error: no complete export in {only_unsettled}: 20261130-12 (still being written:"
    # 2 minutes, or more on a machine slow to start the sync
    assert re.fullmatch(re.escape(expected) + r" a file changed \d+ min ago\)", done.stderr.strip())


def test_the_newest_time_of_a_cloud_storage_listing():
    spec = importlib.util.spec_from_file_location("sync_export", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = [
        "      1024  2026-11-30T01:02:03Z  gs://b/line-capi/20261130-10/conversions.csv",
        "    204800  2026-11-30T01:07:59Z  gs://b/line-capi/20261130-10/page_views-000000000001.csv",
        "TOTAL: 2 objects, 205824 bytes (201 KiB)",
    ]
    assert module.newest_listed_time(lines) == 1796000879.0  # 2026-11-30T01:07:59Z
    assert module.newest_listed_time(lines[2:]) is None


def test_a_run_already_current_is_not_copied_again(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10")
    assert sync(source, dest).returncode == 0
    marker = dest / "current" / "local-note.txt"
    marker.write_text("kept")

    done = sync(source, dest)

    assert done.returncode == 0
    assert "already 20261130-10" in done.stdout
    assert marker.read_text() == "kept"


def test_bad_source_a_real_current_folder_and_a_running_sync_are_one_line_errors(tmp_path):
    dest = tmp_path / "dest"
    done = sync(tmp_path / "nowhere", dest)
    assert (done.returncode, done.stderr.count("\n")) == (1, 1)
    assert "is not a folder" in done.stderr

    source = tmp_path / "source"
    write_run(source, "20261130-10")
    dest.mkdir()
    (dest / "current").mkdir()
    done = sync(source, dest)
    assert (done.returncode, done.stderr.count("\n")) == (1, 1)
    assert "is not a symbolic link" in done.stderr

    (dest / "current").rmdir()
    with open(dest / ".sync.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = sync(source, dest)
    assert (done.returncode, done.stderr.count("\n")) == (1, 1)
    assert "another sync" in done.stderr
    assert not (dest / "current").exists()

    done = sync(source, dest, "--keep", "0")
    assert done.returncode == 2


def test_the_build_reads_the_synced_export_through_current(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    shutil.copytree(SAMPLE_DIR, source / "20260101-12")
    age(source / "20260101-12", 60)  # copytree keeps the checkout's times: minutes old in CI
    assert sync(source, dest).returncode == 0

    result = run_dbt(
        tmp_path, "run", export_dir=dest / "current", vars={"as_of": "2026-01-01T12:00:00+09:00"}
    )

    assert result.returncode == 0, result.output
    assert result.payloads()


def test_the_copy_is_its_owners_only_whatever_the_umask(tmp_path):
    """The export holds plaintext email and phone numbers: 0600 files, 0700 folders, although the
    source is world-readable and the umask is 022."""
    source, dest = tmp_path / "source", tmp_path / "exports" / "dest"
    run = write_run(source, "20261130-10", tables=TABLES[:3])
    (run / "user_master").mkdir()
    (run / "user_master" / "part-000.csv").write_text("user_id,email\nu1,a@example.jp\n")
    for path in (run, *run.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    age(run, 60)

    done = sync(source, dest)

    assert done.returncode == 0, done.stderr
    found = modes(dest)
    # dest, .sync.lock and .sync.source, the run, its 3 files, a folder and a part
    assert len(found) == 9, found
    for name, mode in found.items():
        wanted = 0o700 if (dest / name).is_dir() else 0o600
        assert mode == wanted, (name, oct(mode))
    assert stat.S_IMODE((tmp_path / "exports").stat().st_mode) == 0o700  # created by the sync
    assert done.stderr == ""


def test_a_copy_left_readable_by_an_earlier_version_is_tightened_with_one_line(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10")
    assert sync(source, dest).returncode == 0
    old = dest / "20261130-10"
    old.chmod(0o755)
    (old / "user_master.csv").chmod(0o644)

    done = sync(source, dest)

    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: 2 files and folders of the exports in ")
    assert len(done.stderr.splitlines()) == 1
    assert modes(old) == {".": 0o700, **{f"{t}.csv": 0o600 for t in TABLES}}


def test_an_empty_source_or_dest_is_refused_and_the_current_folder_left_alone(tmp_path):
    """The cron line and the systemd unit pass "$KARTE_SYNC_DIR": unset in .env it is "", which
    must not become the current folder (the project's, with the ledger in data/)."""
    project = tmp_path / "project"
    for folder in ("data", "models", "20261130-10"):
        (project / folder).mkdir(parents=True)
        (project / folder / "kept.txt").write_text("kept")
    source = tmp_path / "source"
    write_run(source, "20261130-11")
    before = modes(project)

    for args, variable in (
        ([str(source), ""], "KARTE_SYNC_DIR"),
        (["", " "], "KARTE_EXPORT_SOURCE"),
    ):
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=project,
        )
        assert done.returncode == 2, done.stderr
        assert f"is empty (is {variable} set in .env?)" in done.stderr.splitlines()[-1]
    assert modes(project) == before
    assert sorted(p.name for p in project.iterdir()) == ["20261130-10", "data", "models"]


def test_a_windows_line_ending_after_source_and_dest_names_the_same_folders(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10")
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), f"{source}\r", f"{dest}\r"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert current_run(dest) == "20261130-10"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "source"]


def test_a_dest_holding_files_the_sync_did_not_write_is_refused(tmp_path):
    source, dest = tmp_path / "source", tmp_path / "project"
    write_run(source, "20261130-10")
    for folder in ("data", "models", "seeds", "sender"):
        (dest / folder).mkdir(parents=True)
    (dest / "data" / "line_capi.duckdb").write_text("ledger")
    before = modes(dest)

    done = sync(source, dest)

    assert done.returncode == 2
    assert done.stderr == (
        f"error: {dest} already holds files the sync did not write (data, models, seeds, ...):"
        " give it a new or empty folder of its own, such as /srv/karte\n"
    )
    assert modes(dest) == before
    assert (dest / "data" / "line_capi.duckdb").read_text() == "ledger"


def test_only_copies_are_pruned_and_tightened_not_what_else_is_in_dest(tmp_path):
    """A new mount point's lost+found is no obstacle; a folder a person adds later to the sync's
    own DEST is neither counted against --keep, deleted nor changed."""
    source, dest = tmp_path / "source", tmp_path / "dest"
    (dest / "lost+found").mkdir(parents=True)
    write_run(source, "20261130-09")
    assert sync(source, dest, "--keep", "1").returncode == 0
    notes = dest / "00-notes"  # sorts before every run
    notes.mkdir()
    (notes / "readme.txt").write_text("kept")
    notes.chmod(0o755)
    half = dest / "20261130-08"  # a folder named like a run without the four tables
    half.mkdir()
    (half / "conversions.csv").write_text("kept")

    for hour in ("10", "11"):
        write_run(source, f"20261130-{hour}")
        done = sync(source, dest, "--keep", "1")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""

    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "00-notes",
        "20261130-08",
        "20261130-11",
        "current",
        "lost+found",
    ]
    assert (notes / "readme.txt").read_text() == "kept"
    assert stat.S_IMODE(notes.stat().st_mode) == 0o755
    assert (half / "conversions.csv").read_text() == "kept"


def test_only_dated_folders_are_runs_so_a_latest_link_never_pins_the_sync(tmp_path):
    """A `latest` link or a `backfill/` folder sorts after every date: taken for the newest run,
    it held current on one copy while the export went on (stale hours later, exit 11)."""
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10")
    write_run(source, "backfill")
    (source / "latest").symlink_to("20261130-10")
    assert sync(source, dest).returncode == 0
    assert current_run(dest) == "20261130-10"
    write_run(source, "20261130-11")
    (source / "latest").unlink()
    (source / "latest").symlink_to("20261130-11")

    done = sync(source, dest)

    assert done.returncode == 0, done.stderr
    assert current_run(dest) == "20261130-11"
    assert not (dest / "latest").exists() and not (dest / "backfill").exists()


def test_runs_in_nested_date_folders_are_refused_naming_the_layout_to_use(tmp_path):
    source = tmp_path / "source"
    write_run(source, "2026/11/30/10")
    done = sync(source, tmp_path / "dest")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: no complete export in {source}: 2026 holds dated folders, not the tables: a run"
        " is one folder named by its date and hour, such as 20261130-10 (the export path"
        " line-capi/{{YYYYMMDD}}-{{HH}}/, docs/karte-datahub.md), not nested ones\n"
    )
    assert not (tmp_path / "dest" / "current").exists()
    # a folder of dated folders that sorts after a complete run is passed over, not taken for
    # the layout: the run before it is synced
    write_run(source, "20251130-10")
    done = sync(source, tmp_path / "dest")
    assert done.returncode == 0, done.stderr
    assert current_run(tmp_path / "dest") == "20251130-10"


def test_a_source_without_runs_says_what_it_holds_instead(tmp_path):
    run = write_run(tmp_path / "source", "20261130-10")
    done = sync(run, tmp_path / "dest")  # the run folder itself, not the folder of runs
    assert (done.returncode, done.stderr) == (
        1,
        f"error: export source {run} holds the four tables itself: give the folder above it,"
        " whose sub-folders are the export's runs\n",
    )
    only = tmp_path / "undated"
    write_run(only, "backfill")
    (only / "notes").mkdir()
    done = sync(only, tmp_path / "dest")
    assert (done.returncode, done.stderr) == (
        1,
        f"error: export source {only} holds no run folder, named by its date such as"
        " 20261130-10 (only backfill, notes)\n",
    )
    assert not (tmp_path / "dest" / "current").exists()


def test_an_interrupted_copy_is_one_line_and_leaves_nothing_half_done(
    tmp_path, monkeypatch, capsys, request
):
    """Ctrl-C during a long copy: the half-done copy is deleted, current stays, no traceback."""
    umask = os.umask(0o022)  # main() sets the owner-only umask: give this worker its own back
    os.umask(umask)
    request.addfinalizer(lambda: os.umask(umask))
    spec = importlib.util.spec_from_file_location("sync_export", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source, dest = tmp_path / "source", tmp_path / "dest"
    write_run(source, "20261130-10")
    assert module.main([str(source), str(dest)]) == 0
    write_run(source, "20261130-11")
    copy = module.LocalSource.copy

    def interrupted(self, run, target):
        copy(self, run, target)  # the files are there, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(module.LocalSource, "copy", interrupted)
    capsys.readouterr()

    assert module.main([str(source), str(dest)]) == 130

    assert capsys.readouterr().err == "error: interrupted\n"
    assert current_run(dest) == "20261130-10"
    assert sorted(p.name for p in dest.iterdir()) == [
        ".sync.lock",
        ".sync.source",
        "20261130-10",
        "current",
    ]


def test_a_second_source_into_the_same_dest_is_refused(tmp_path):
    """Two sites given one KARTE_SYNC_DIR: the second sync would swap `current` to its own
    export (same run name, another shop), and the first site's job would send the other shop's
    orders to its tag. The DEST remembers its SOURCE; the same SOURCE named another way is fine."""
    shop_a, shop_b, dest = tmp_path / "shop-a", tmp_path / "shop-b", tmp_path / "karte"
    write_run(shop_a, "20261205-10", text="ua1\n")
    write_run(shop_b, "20261205-10", text="ub1\n")
    assert sync(shop_a, dest).returncode == 0
    assert (dest / ".sync.source").read_text() == f"{shop_a.resolve()}\n"
    assert stat.S_IMODE((dest / ".sync.source").stat().st_mode) == 0o600

    refused = sync(shop_b, dest)

    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: {dest} holds the copies of {shop_a.resolve()}, not of {shop_b.resolve()}: give"
        " each export source a folder of its own (KARTE_SYNC_DIR, and"
        " KARTE_EXPORT_DIR=<it>/current, in each site's .env); to switch this one to the new"
        f" source, delete {dest / '.sync.source'}\n"
    )
    assert "ua1" in (dest / "current" / "conversions.csv").read_text()
    (dest / ".sync.source").write_bytes(b"\xff\xfe")  # damaged: still one line, not a traceback
    damaged = sync(shop_a, dest)
    assert damaged.returncode == 2 and damaged.stderr.count("\n") == 1, damaged.stderr
    (dest / ".sync.source").write_text(f"{shop_a.resolve()}\n")
    # the first source, named through a relative path and a link, is the same source
    (tmp_path / "link-a").symlink_to(shop_a)
    again = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), "link-a", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr

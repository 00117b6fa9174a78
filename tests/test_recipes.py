"""The scheduling recipes of docs/operations.md are the files in deploy/, each runs exactly
`sender run`, and the cron and systemd ones run here as the scheduler would run them."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pipeline_fixtures import ROOT
from schedule_fixtures import clock_export
from sender_fixtures import TAG_ID, TOKEN, mock_server

from sender.alert_settings import RUN_ONLY_ENV

DEPLOY = ROOT / "deploy"
RECIPES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
SERVICE_ROOT = "/srv/line-capi"


def test_every_recipe_is_shown_verbatim_in_the_operations_page():
    page = (ROOT / "docs" / "operations.md").read_text()
    assert len(RECIPES) == 6
    for recipe in RECIPES:
        assert recipe.read_text().rstrip("\n") in page, recipe
        assert f"`{recipe.relative_to(ROOT)}`" in page, recipe


def test_a_recipe_another_page_quotes_is_the_file_as_it_is():
    """A page that says "this is deploy/..." shows that file, not an older copy of it."""
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        for recipe in RECIPES:
            if f"This is `{recipe.relative_to(ROOT)}`" in text:
                assert recipe.read_text().rstrip("\n") in text, (page.name, recipe)


def test_every_recipe_runs_the_one_entry_point():
    cron = (DEPLOY / "cron" / "line-capi.cron").read_text()
    # the export sync, then the job (a failed sync leaves the previous export, found stale)
    assert cron_command(cron).endswith(
        "{ out=$({ .venv/bin/python datahub/sync_export.py"
        ' "$KARTE_EXPORT_SOURCE" "$KARTE_SYNC_DIR";'
        " LINE_ACCESS_TOKEN_FILE=/srv/line-capi/access-token timeout --preserve-status 50m"
        " .venv/bin/sender run; }"
        " 2>&1); code=$?; case $code in 0|1|13|130) printf '%s\\n' \"$out\""
        " | grep -q 'sender run: alert: ' || exit $code;; esac;"
        " printf '%s\\n' \"$out\"; exit $code; }"
    )
    assert service()["ExecStartPre"].startswith("-")
    assert service()["ExecStart"] == f"{SERVICE_ROOT}/.venv/bin/sender run"
    workflow = yaml.safe_load((DEPLOY / "github-actions" / "line-capi.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["run"]["steps"]]
    assert runs[-1] == ".venv/bin/sender run" and not any("dbt build" in r for r in runs)
    docker = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sender", "run"]' in docker and 'VOLUME ["/data"]' in docker
    for line in docker.splitlines():  # everything it copies exists in the repository
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@pytest.mark.parametrize(
    ("code", "output", "mailed"),
    [
        (0, "sender run: done: exit 0", False),
        # events left pending, the previous run still going: the next run sees to it
        (1, "sender run: done: exit 1", False),
        (13, "sender run: error: another sender run (pid 7) holds ...", False),
        # ... until the run says a person is needed: the third in a row, once
        (1, "sender run: alert: events left pending by 3 runs in a row", True),
        (0, "sender run: alert: with_email of Purchase fell from 70% to 5%", True),
        (2, "sender run: error: LINE_TAG_ID is not set", True),
        (11, "sender run: error: KARTE export table conversions is stale", True),
        # stopped by the recipe's timeout: the run's own 130 (--preserve-status), not timeout's
        # 124, mailed every hour; quiet until the third in a row alerts
        (130, "sender run: error: interrupted", False),
        (130, "sender run: alert: `sender run` exited 130 INTERRUPTED 3 runs in a row", True),
        # mailed as printed: dash's echo turned this hint's \\r into a carriage return
        (11, "sender run: error: … mixed line endings: sed 's/\\r$//' …", True),
    ],
)
def test_cron_mails_a_failed_run_or_an_alert_not_every_hour_of_an_outage(code, output, mailed):
    """The cron line printed (and cron mailed) every run that did not exit 0: a day of LINE
    being down was 24 mails of exit 1, where the alert says it once."""
    command = cron_command((DEPLOY / "cron" / "line-capi.cron").read_text())
    job = command[command.index("{ out=$(") + len("{ out=$(") : command.index(" 2>&1);")]
    # the recipe's own logic, around a job that prints `output` and exits with `code`
    stand_in = command[command.index("{ out=$(") :].replace(
        job, "{ printf '%s\\n' \"$STUB_OUT\"; (exit $STUB_CODE); }"
    )
    r = subprocess.run(
        ["/bin/sh", "-c", stand_in],
        env={"STUB_OUT": output, "STUB_CODE": str(code), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert r.returncode == code
    assert r.stdout == (output + "\n" if mailed else ""), r.stdout


def cron_command(text: str) -> str:
    """The command of the crontab's one line as cron hands it to the shell (crontab(5)): a `%`
    would end the command there (the rest becomes its stdin), so the recipe writes each as `\\%`,
    which cron passes on as `%`."""
    [line] = [x for x in text.splitlines() if x.strip() and not x.startswith("#")]
    field = line.split(None, 5)[5]
    assert re.search(r"(?<!\\)%", field) is None, "a % not written \\%: cron ends the line there"
    return field.replace("\\%", "%")


def service() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(DEPLOY / "systemd" / "line-capi.service")
    return dict(parser["Service"])


@pytest.fixture
def install(tmp_path):
    """An install at a folder of its own, laid out as the recipes expect: the project, its
    .venv, and the .env of deploy/env.example with this test's values."""
    home = tmp_path / "srv"
    home.mkdir()
    for name in ("dbt_project.yml", "models", "macros", "seeds", "tests", "sample", "datahub"):
        (home / name).symlink_to(ROOT / name)
    (home / "profiles.yml").symlink_to(ROOT / "profiles.example.yml")
    (home / "data").mkdir()  # a checkout has data/ (data/.gitkeep), where the database goes
    (home / ".venv").symlink_to(Path(sys.executable).parent.parent)
    # the Datahub job flow's output: one run folder, written half an hour ago
    export = clock_export(
        tmp_path / "bucket" / "20261130-10", {"ORD-1": 1, "ORD-2": 3}, newest_hours=0.2
    )
    written = time.time() - 1800
    for path in export.iterdir():
        os.utime(path, (written, written))
    return home, export


def write_env(home: Path, values: dict[str, str]) -> None:
    lines = []
    for line in (DEPLOY / "env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if name in values else line)
    (home / ".env").write_text("\n".join(lines) + "\n")
    (home / ".env").chmod(0o600)


def scheduler_env() -> dict[str, str]:
    """What cron or systemd start a job with: almost nothing."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def load_credentials(unit: dict[str, str], directory: Path) -> dict[str, str]:
    """What systemd does for LoadCredential=: a private copy of each file in a folder named by
    $CREDENTIALS_DIRECTORY (%d in the unit); then the unit's Environment= with %d resolved."""
    directory.mkdir(mode=0o700)
    name, _, source = unit["LoadCredential"].partition(":")
    (directory / name).write_bytes(Path(source).read_bytes())
    (directory / name).chmod(0o400)
    env = {"CREDENTIALS_DIRECTORY": str(directory)}
    for assignment in shlex.split(unit["Environment"].replace("%d", str(directory))):
        key, _, value = assignment.partition("=")
        env[key] = value
    return env


def test_the_cron_and_systemd_recipes_run_the_hourly_job(install, tmp_path):
    home, export = install
    token_file = home / "access-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with mock_server() as srv:
        synced = tmp_path / "karte"
        write_env(
            home,
            {
                "KARTE_EXPORT_SOURCE": str(export.parent),
                "KARTE_SYNC_DIR": str(synced),
                "KARTE_EXPORT_DIR": str(synced / "current"),
                "LINE_TAG_ID": TAG_ID,
                "LINE_CAPI_DUCKDB": "data/line_capi.duckdb",
            },
        )
        settings = (home / ".env").read_text().splitlines()
        assert not [line for line in settings if line.startswith("LINE_ACCESS_TOKEN")]
        (home / ".env").write_text((home / ".env").read_text() + f"LINE_CAPI_ENDPOINT={srv.url}\n")
        # cron: the line's command, through a shell
        command = cron_command((DEPLOY / "cron" / "line-capi.cron").read_text())
        command = command.replace(SERVICE_ROOT, str(home))
        cron = subprocess.run(
            ["/bin/sh", "-c", command],
            env=scheduler_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert cron.returncode == 0, cron.stderr
        # a run that ends well prints nothing: cron mails only a failure
        assert (cron.stdout, cron.stderr) == ("", "")
        assert (synced / "current").resolve().name == "20261130-10"  # the sync ran first
        assert srv.stats()["accepted_unique"] == 2
        # systemd: ExecStart in WorkingDirectory, with the EnvironmentFile's variables and the
        # token handed over by LoadCredential=
        unit = {k: v.replace(SERVICE_ROOT, str(home)) for k, v in service().items()}
        env = scheduler_env()
        for line in Path(unit["EnvironmentFile"]).read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                env[name] = value
        env.update(load_credentials(unit, tmp_path / "credentials"))
        # ExecStartPre, with systemd's ${NAME} taken from the environment ("-": may fail)
        pre = unit["ExecStartPre"].removeprefix("-")
        for name in ("KARTE_EXPORT_SOURCE", "KARTE_SYNC_DIR"):
            pre = pre.replace("${" + name + "}", env[name])
        sync = subprocess.run(
            shlex.split(pre), cwd=unit["WorkingDirectory"], env=env, capture_output=True, text=True
        )
        assert sync.returncode == 0 and "is already 20261130-10" in sync.stdout, sync.stderr
        systemd = subprocess.run(
            shlex.split(unit["ExecStart"]),
            cwd=unit["WorkingDirectory"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert systemd.returncode == 0, systemd.stderr
        assert "pending 0, sent 0" in systemd.stdout  # the ledger: nothing twice
        assert srv.stats()["duplicates"] == 0
        # cron again, the token file gone: the failed run prints its lines, for cron to mail
        token_file.unlink()
        failed = subprocess.run(
            ["/bin/sh", "-c", command], env=scheduler_env(), capture_output=True, text=True
        )
        assert failed.returncode == 2, failed.stderr
        assert "error: LINE_ACCESS_TOKEN_FILE" in failed.stdout and failed.stderr == ""
        assert f"{synced / 'current'} is already 20261130-10" in failed.stdout  # the sync's too
    log = (home / "data" / "line_capi_run.log").read_text()
    assert log.count("run: done: exit 0") == 2
    assert TOKEN not in log + cron.stderr + cron.stdout + systemd.stderr + systemd.stdout


@pytest.mark.parametrize(
    ("made_here", "form"), [(True, "#!"), (True, "sh"), (True, "python3"), (False, "#!")]
)
def test_make_setup_makes_again_a_venv_made_in_another_folder(tmp_path, made_here, form):
    """A checkout copied to another machine or folder with its .venv: the scripts start the old
    folder's Python (or none), the editable install reads the old folder's code, and `make setup`
    said "Nothing to be done". `make setup` runs the check first (`venv-check`), never `make -n`:
    a .venv made here, by pip's long-path form or by hand (python3), is kept."""
    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", checkout / "Makefile")
    (checkout / "pyproject.toml").write_text("")
    where = checkout if made_here else tmp_path / "elsewhere"
    python = f"{where}/.venv/bin/python"
    # pip's form for a long path or one with a space: the path on the second line
    sh = "#!/bin/sh\n" + "'" * 3 + f'exec\' \'{python}\' "$0" "$@"\n' + "' " + "'" * 3 + "\n"
    head = {"#!": f"#!{python}\n", "sh": sh, "python3": f"#!{python}3\n"}[form]
    (checkout / ".venv" / "bin" / "sender").write_text(head + "import sys\n")
    (checkout / ".venv" / ".installed").write_text("")
    dry = subprocess.run(["make", "-n", "setup"], cwd=checkout, capture_output=True, timeout=60)
    assert dry.returncode == 0 and (checkout / ".venv").exists()  # -n changes nothing
    r = subprocess.run(
        ["make", "venv-check"], cwd=checkout, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    said = f"make: .venv was made in another folder (#!{where}/.venv/bin/python), not here"
    assert (said in r.stderr) is not made_here, r.stderr
    assert (checkout / ".venv").exists() is made_here


def make_demo(port: int | str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "demo", f"DEMO_PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_demo_stops_in_one_line_when_its_port_is_taken():
    """Not a push to whatever listens there (another program, an earlier demo's server)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = make_demo(port)
    assert r.returncode != 0
    assert f"make demo: port {port} is in use" in r.stderr
    assert "sender run" not in r.stdout + r.stderr and "pending" not in r.stdout


@pytest.mark.parametrize("port", ["abc", "70000", ""])
def test_make_demo_says_a_port_that_is_no_port_number_is_not_one(port):
    """Not "port abc is in use", which sends the user looking for a program that is not there."""
    r = make_demo(port)
    assert r.returncode != 0
    assert r.stderr.splitlines()[0] == (
        f"make demo: DEMO_PORT must be a port number, 1 to 65535, not '{port}'"
    )
    assert "sender run" not in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("given", "database", "log"),
    [
        ((), "data/line_capi.duckdb", "data/line_capi_run.log"),
        # a checkout whose job kept the default database: the demo on a file of its own
        (("DEMO_DUCKDB=data/demo.duckdb",), "data/demo.duckdb", "data/demo_run.log"),
    ],
)
def test_make_demo_names_its_own_files_whatever_the_shell_exports(given, database, log):
    """A shell that exports a real job's settings (its database, run log, token file, alert
    webhook) must not have the sample's run written into them: each `sender` command of the
    demo sets its own. Read from the recipe as make expands it (`make -n`), command by command."""
    recipe = subprocess.run(
        ["make", "-n", "-s", "demo", "DEMO_PORT=1", *given],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert recipe.returncode == 0, recipe.stderr
    demo = recipe.stdout[recipe.stdout.index("set -e") :]  # the demo's recipe, not setup's
    commands = [
        shlex.split(part) for part in demo.replace("\\\n", " ").split(";") if "bin/sender " in part
    ]
    assert [c[c.index(next(w for w in c if w.endswith("bin/sender"))) + 1] for c in commands] == [
        "mock-server",
        "run",
        "status",
    ]
    for words in commands:
        settings = dict(w.split("=", 1) for w in words if "=" in w and w.split("=")[0].isupper())
        assert settings["LINE_CAPI_DUCKDB"] == database, words
        assert settings["LINE_CAPI_RUN_LOG"] == log, words
        # dbt's profile: a real job's DBT_PROFILES_DIR names a profile with its own database path
        assert settings["DBT_PROFILES_DIR"] == str(ROOT), words
        for name in ("DBT_PROFILE", "DBT_TARGET", "DBT_TARGET_PATH", "DBT_LOG_PATH"):
            assert settings[name] == "", (name, words)
        if "run" in words:
            # the token file, and every setting that reaches outside: the alert webhook, the
            # heartbeat (a real job's monitor must not hear the sample's run succeed)
            for name in ("LINE_ACCESS_TOKEN_FILE", *RUN_ONLY_ENV):
                assert settings[name] == "", (name, words)
            # the server the demo started, by the port it says it listens on: a program that
            # took the port first got the sample's run and the demo's token
            assert settings["LINE_CAPI_ENDPOINT"] == "$url", words
    assert "mock-server: listening on" in recipe.stdout


def test_the_docker_recipes_plain_install_carries_the_console_entry(tmp_path):
    """The Dockerfile runs `pip install .` (not the editable install of make setup): the wheel must
    hold every package under sender/, sender.cli (the console entry) included; it held only
    sender/*.py. Built with setuptools' own backend from a copy of what the Dockerfile copies."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(
        ["cp", "-r", str(ROOT / "sender"), str(source / "sender")], check=True, timeout=60
    )
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import build_meta; print(build_meta.build_wheel('out'))",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = source / "out" / build.stdout.strip().splitlines()[-1]
    installed = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(installed),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    packages = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "sender").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    for package in packages:
        assert (installed / package.replace(".", "/") / "__init__.py").is_file(), package
    # the installed copy, not the checkout, answers the console entry
    env = {**os.environ, "PYTHONPATH": str(installed)}
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sender.cli, sys; print(sender.cli.__file__);"
            " sys.argv = ['sender', '--version']; sender.cli.main()",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.startswith(str(installed)), r.stdout + r.stderr
    assert "sender 0." in r.stdout, r.stdout + r.stderr

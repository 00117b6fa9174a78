"""What sqlfluff's jinja templater needs to render this project as `dbt compile` does on DuckDB,
offline: dbt's context (var, env_var, execute, ...) beside sqlfluff's own dbt builtins (ref,
source, config, return). The project's macros themselves are loaded from macros/ (.sqlfluff), so
the linted SQL is the SQL dbt runs, on the bundled sample with the vars of dbt_project.yml."""

from __future__ import annotations

import datetime as _datetime
import os as _os
from pathlib import Path as _Path

import yaml as _yaml

from . import adapter, dbt, exceptions, modules  # noqa: F401  (namespaces for the templates)

_ROOT = _Path(__file__).resolve().parents[2]
_VARS = {
    **_yaml.safe_load((_ROOT / "dbt_project.yml").read_text())["vars"],
    # a build of the bundled sample at a fixed time, as `make test-dbt` runs it
    "karte_export_dir": "sample/karte_export",
    "as_of": "2026-01-01T12:00:00+09:00",
}

# dbt renders a model twice, first with execute false: the macros that query the database
# (column look-ups, the filter checks) only run when it is true, so this never needs one.
execute = False
invocation_id = "00000000-0000-4000-8000-000000000000"
project_name = "line_capi"
run_started_at = _datetime.datetime(2026, 1, 1, 3, 0, tzinfo=_datetime.UTC)
# `make test-dbt` names the sample with --vars
invocation_args_dict = {"vars": {"karte_export_dir": _VARS["karte_export_dir"]}}


class _Target:
    type = "duckdb"
    name = "duckdb"
    schema = "main"


class _Flags:
    WHICH = "build"


target = _Target()
flags = _Flags()


def var(name, default=None):
    return _VARS.get(name, default)


def env_var(name, default=""):
    return str(_ROOT) if name == "PWD" else _os.environ.get(name, default)

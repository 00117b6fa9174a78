"""The macros' layout holds: every macro and generic test is documented in macros/_macros.yml
with its arguments, every dispatched macro has its DuckDB and Spark bodies beside it and a
`default__` that stops with a clear error, and that error is one line naming the macro."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import yaml
from pipeline_fixtures import run_dbt

ROOT = Path(__file__).resolve().parent.parent
ENGINE_BODY = re.compile(r"^(duckdb|spark|default)__(\w+)$")
DEFINITION = re.compile(r"\{%-? (macro|test) (\w+)\(([^)]*)\)")
DISPATCH = re.compile(r"adapter\.dispatch\('(\w+)', 'line_capi'\)")


def definitions() -> dict[str, tuple[Path, list[str]]]:
    """Every macro of macros/ and generic test of tests/dbt/generic/ (as test_<name>)."""
    found = {}
    files = sorted(ROOT.glob("macros/**/*.sql")) + sorted(ROOT.glob("tests/dbt/generic/*.sql"))
    for path in files:
        for kind, name, args in DEFINITION.findall(path.read_text()):
            key = name if kind == "macro" else f"test_{name}"
            assert key not in found, f"{key} is defined twice"
            # the argument names, without their defaults (key=none documents as key)
            found[key] = (path, [a.split("=")[0].strip() for a in args.split(",") if a.strip()])
    return found


def documented() -> dict[str, list[str]]:
    entries = yaml.safe_load((ROOT / "macros/_macros.yml").read_text())["macros"]
    return {e["name"]: [a["name"] for a in e.get("arguments", [])] for e in entries}


def test_every_macro_is_documented_with_its_arguments():
    defined, docs = definitions(), documented()
    problems = []
    for name, (path, args) in defined.items():
        body = ENGINE_BODY.match(name)
        if body and body.group(2) in docs:
            continue  # an engine's body, documented by its dispatcher
        if name not in docs:
            problems.append(f"{name} ({path.relative_to(ROOT)}) is not in macros/_macros.yml")
        elif docs[name] != args:
            problems.append(f"{name}: arguments {args}, documented {docs[name]}")
    problems += [f"{name} is documented but not defined" for name in docs if name not in defined]
    assert not problems, problems


def test_every_dispatched_macro_has_its_engine_bodies_beside_it():
    defined = definitions()
    problems = []
    for path in sorted(ROOT.glob("macros/**/*.sql")):
        text = path.read_text()
        for name in DISPATCH.findall(text):
            for engine in ("duckdb", "spark", "default"):
                body = f"{engine}__{name}"
                if body not in defined or defined[body][0] != path:
                    problems.append(f"{path.relative_to(ROOT)}: no {body} beside {name}")
            default = re.search(
                r"\{% macro default__" + name + r"\([^)]*\) %\}(.*?)\{% endmacro %\}", text, re.S
            )
            call = r"\{\{-? not_ported\('" + name + r"'\) -?\}\}"
            if default and not re.fullmatch(call, default.group(1).strip()):
                problems.append(f"default__{name} is not {{{{ not_ported('{name}') }}}}")
    assert not problems, problems


def test_an_engine_without_a_body_gets_one_line_naming_the_macro(tmp_path):
    result = run_dbt(tmp_path, "run-operation", "not_ported", "--args", "{macro_name: trim_ascii}")
    assert result.returncode != 0
    (line,) = [line for line in result.output.splitlines() if "is not ported" in line]
    assert line.strip() == "trim_ascii is not ported to duckdb: see docs/spark.md"


def test_the_senders_copy_of_lines_limits_is_the_models():
    """sender/line_rules.py keeps the few limits the sender applies itself (an event's age, the
    key's length); macros/line_capi_rules.sql holds the models'. Written in two languages, they
    must say the same: a limit changed in one file only fails here."""
    from sender import line_rules

    env = jinja2.Environment(autoescape=False, extensions=["jinja2.ext.do"])  # noqa: S701 - SQL
    env.globals["return"] = lambda value: value  # dbt's return(): the macro's value
    rules = env.from_string((ROOT / "macros/line_capi_rules.sql").read_text()).module
    assert int(rules.line_max_event_age_seconds()) == line_rules.MAX_AGE_SECONDS
    assert int(rules.line_max_event_lead_seconds()) == line_rules.MAX_AHEAD_SECONDS
    key = str(rules.line_deduplication_key_pattern()).strip()
    longest = line_rules.MAX_DEDUPLICATION_KEY_LENGTH
    assert re.fullmatch(key, "k" * longest) and not re.fullmatch(key, "k" * (longest + 1))

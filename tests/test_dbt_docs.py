"""dbt's documentation of the project: `dbt docs generate` works offline, with or without an export
named and without a database; the manifest holds the sender's exposure and marks every column of
personal data (docs/security.md); the descriptions are DuckDB comments after a build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import duckdb
import pytest
from dbt_forkserver import DBT
from pipeline_fixtures import HOURLY_BUILD, ROOT, SAMPLE_DIR, run_dbt

# Every column of these names, in any model or source, is marked `personal_data` so.
PERSONAL_DATA = {
    "email": "plain",
    "phone": "plain",
    "email_sha256": "hashed",
    "phone_sha256": "hashed",
    "payload": "hashed",
    "user_id": "pseudonymous",
    "line_user_id": "pseudonymous",
    "line_uid": "pseudonymous",
    "lt_cid": "pseudonymous",
    "browser_id": "pseudonymous",
    "click_id": "pseudonymous",
    "ip_address": "pseudonymous",
    "web_ip_address": "pseudonymous",
    "user_agent": "pseudonymous",
    "web_user_agent": "pseudonymous",
}
MODELS = {
    "stg_karte__conversions",
    "stg_karte__page_views",
    "stg_karte__line_users",
    "stg_karte__user_master",
    "int_conversions_windowed",
    "int_click_ids_attributed",
    "int_browser_ids_attributed",
    "int_conversion_page_views",
    "int_users_hashed",
    "int_line_uids_latest",
    "int_conversion_values",
    "int_conversions_joined",
    "line_capi_payload",
    "line_capi_payload_fields",
    "line_capi_rejected",
    "line_capi_build_info",
    "line_capi_coverage",
}


@pytest.fixture(scope="module")
def sample_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    result = run_dbt(tmp, *HOURLY_BUILD, export_dir=SAMPLE_DIR)
    assert result.returncode == 0, result.output
    return result


@pytest.fixture(scope="module")
def docs(sample_build, tmp_path_factory):
    """`dbt docs generate` on a copy of the built database, with no export named."""
    tmp = tmp_path_factory.mktemp("docs-generate")
    database = tmp / "line_capi.duckdb"
    shutil.copy(sample_build.database, database)
    result = run_dbt(tmp, "docs", "generate", database=database)
    assert result.returncode == 0, result.output
    target = tmp / "target"
    assert (target / "index.html").is_file()
    return (
        json.loads((target / "manifest.json").read_text()),
        json.loads((target / "catalog.json").read_text()),
    )


def test_the_catalog_holds_every_model_with_its_columns(docs):
    _, catalog = docs
    built = {key.split(".")[-1]: node for key, node in catalog["nodes"].items()}
    assert MODELS <= set(built)
    coverage = built["line_capi_coverage"]
    assert "with_click_id" in coverage["columns"]
    assert coverage["metadata"]["comment"].startswith("Identifier coverage")
    assert {key.split(".")[-1] for key in catalog["sources"]} == {
        "conversions",
        "page_views",
        "line_users",
        "user_master",
    }


def test_the_sender_is_an_exposure_of_the_tables_it_reads(docs):
    manifest, _ = docs
    exposure = manifest["exposures"]["exposure.line_capi.line_capi_sender"]
    assert exposure["type"] == "application"
    assert exposure["owner"]["name"]
    assert set(exposure["depends_on"]["nodes"]) == {
        "model.line_capi.line_capi_payload",
        "model.line_capi.line_capi_build_info",
        "model.line_capi.line_capi_coverage",
    }


def documented_columns(manifest) -> dict[str, dict]:
    """model or source name -> its columns as the YAML describes them."""
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    return {node["name"]: node["columns"] for node in nodes + list(manifest["sources"].values())}


def test_every_column_of_personal_data_is_marked(docs):
    manifest, catalog = docs
    documented = documented_columns(manifest)
    built = {
        node["metadata"]["name"]: node["columns"]
        for node in list(catalog["nodes"].values()) + list(catalog["sources"].values())
    }
    unmarked, wrong = [], []
    for relation, columns in built.items():
        for column in columns:
            kind = PERSONAL_DATA.get(column.lower())
            found = documented.get(relation, {}).get(column, {}).get("meta", {})
            if kind and found.get("personal_data") != kind:
                (wrong if found else unmarked).append(f"{relation}.{column}")
    assert not unmarked and not wrong, {"unmarked": unmarked, "wrong": wrong}
    # the vocabulary is the three words docs/security.md defines, nothing else
    used = {
        column["meta"]["personal_data"]
        for columns in documented.values()
        for column in columns.values()
        if "personal_data" in column["meta"]
    }
    assert used == {"plain", "hashed", "pseudonymous"}
    assert documented["user_master"]["email"]["meta"] == {"personal_data": "plain"}


def test_descriptions_are_comments_in_duckdb(sample_build, docs):
    """Every model and seed the build made carries its YAML description, and each described
    column its own (the on-run-end hook persist_descriptions)."""
    manifest, _ = docs
    with sample_build.connect() as con:
        relations = dict(
            con.sql(
                "select table_name, comment from duckdb_tables() union all "
                "select view_name, comment from duckdb_views() where not internal"
            ).fetchall()
        )
        columns = {
            (table, column): comment
            for table, column, comment in con.sql(
                "select table_name, column_name, comment from duckdb_columns() where not internal"
            ).fetchall()
        }
    nodes = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed") and node["name"] in relations
    ]
    assert {node["name"] for node in nodes} >= {
        "line_capi_coverage",
        "stg_karte__page_views",
        "line_capi_reject_reasons",
    }
    described = 0
    for node in nodes:
        assert relations[node["name"]] == (node["description"] or None), node["name"]
        for column, documented in node["columns"].items():
            if documented["description"] and (node["name"], column) in columns:
                assert columns[node["name"], column] == documented["description"]
                described += 1
    assert described > 100
    # a column the YAML does not describe carries no comment
    assert columns["line_capi_reject_reasons", "reason"] is None


@pytest.mark.parametrize("export_named", [False, True], ids=["no-export", "sample-named"])
def test_docs_generate_works_without_a_database(tmp_path, export_named):
    """Before any build: dbt makes an empty database file; the manifest documents everything."""
    database = tmp_path / "new" / "line_capi.duckdb"
    database.parent.mkdir()
    result = run_dbt(
        tmp_path,
        "docs",
        "generate",
        export_dir=SAMPLE_DIR if export_named else None,
        database=database,
    )
    assert result.returncode == 0, result.output
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert "exposure.line_capi.line_capi_sender" in manifest["exposures"]
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert catalog["nodes"] == {}
    with duckdb.connect(str(database), read_only=True) as con:
        views = {name for (name,) in con.sql("select view_name from duckdb_views()").fetchall()}
    # only a named export is read (the hook makes its views)
    assert ("conversions" in views) is export_named


def test_descriptions_reach_models_built_in_a_schema_of_their_own(tmp_path):
    """A site's own +schema for some models: each relation is found where its config put it."""
    project = tmp_path / "project"
    for part in ("models", "macros", "seeds", "tests", "analyses"):
        if (ROOT / part).exists():
            shutil.copytree(ROOT / part, project / part)
    settings = (ROOT / "dbt_project.yml").read_text()
    marts = "    marts:\n      +materialized: table\n"
    assert marts in settings
    (project / "dbt_project.yml").write_text(
        settings.replace(marts, marts + "      +schema: shop\n")
    )
    database = tmp_path / "line_capi.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "KARTE_", "DBT_"))}
    shutil.copy(ROOT / "profiles.example.yml", tmp_path / "profiles.yml")
    result = subprocess.run(
        [DBT, "run", "--project-dir", str(project), "--profiles-dir", str(tmp_path)],
        cwd=tmp_path,
        env={
            **env,
            "DO_NOT_TRACK": "1",
            "LINE_CAPI_DUCKDB": str(database),
            "KARTE_EXPORT_DIR": str(SAMPLE_DIR),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with duckdb.connect(str(database), read_only=True) as con:
        commented = dict(
            con.sql(
                "select schema_name || '.' || table_name, count(comment) from duckdb_columns()"
                " where table_name in ('line_capi_payload', 'stg_karte__page_views')"
                " group by all"
            ).fetchall()
        )
    assert set(commented) == {"main_shop.line_capi_payload", "main.stg_karte__page_views"}
    assert all(count > 3 for count in commented.values()), commented

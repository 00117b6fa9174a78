"""dbt's `adapter` as the templates use it: dispatch to the DuckDB body, quote a name."""

from jinja2 import pass_context


@pass_context
def dispatch(context, macro_name, macro_namespace=None):
    return context[f"duckdb__{macro_name}"]


def quote(name):
    return '"' + str(name).replace('"', '""') + '"'


def type():
    return "duckdb"

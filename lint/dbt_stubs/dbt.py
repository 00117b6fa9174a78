"""The `dbt.` macros the project calls, as dbt-duckdb renders them."""


def string_literal(value):
    return f"'{value}'"


def escape_single_quotes(value):
    return str(value).replace("'", "''")


def type_string():
    return "TEXT"


def type_bigint():
    return "bigint"

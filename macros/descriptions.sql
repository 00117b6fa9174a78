{#-
    on-run-end: the descriptions of the models and seeds this run built, as DuckDB comments on
    their tables, views and columns, readable with
    `select table_name, column_name, comment from duckdb_columns()`.

    dbt's persist_docs config does this one relation at a time, each with a query for its columns
    and a batch of its own: about a sixth of the build of a small export (CHANGELOG.md). Here it
    is one query for the columns of every relation built, and one batch of statements.
    A column is commented only where the relation has it and its YAML describes it.
-#}
{% macro persist_descriptions(results) %}
    {{ return(adapter.dispatch('persist_descriptions', 'line_capi')(results)) }}
{% endmacro %}

{% macro default__persist_descriptions(results) %}{{ not_ported('persist_descriptions') }}{% endmacro %}

{% macro duckdb__persist_descriptions(results) %}
    {%- set built = [] -%}
    {%- for result in results
        if result.node.resource_type in ('model', 'seed') and result.status == 'success' -%}
        {%- do built.append(result.node) -%}
    {%- endfor -%}
    {%- if not execute or not built -%}{{ return('') }}{%- endif -%}
    {%- set names = [] -%}
    {%- for node in built -%}{%- do names.append(description_literal(node.alias)) -%}{%- endfor -%}
    {%- set found = run_query(
        "select table_name, column_name from duckdb_columns()"
        ~ " where database_name = " ~ description_literal(built[0].database)
        ~ " and schema_name = " ~ description_literal(built[0].schema)
        ~ " and table_name in (" ~ names | join(', ') ~ ")") -%}
    {%- set columns = {} -%}
    {%- for row in found.rows -%}{%- do columns.setdefault(row[0], []).append(row[1]) -%}{%- endfor -%}
    {%- set statements = [] -%}
    {%- for node in built -%}
        {%- set kind = 'view' if node.config.materialized == 'view' else 'table' -%}
        {%- set relation = api.Relation.create(
            database=node.database, schema=node.schema, identifier=node.alias, type=kind) -%}
        {%- if node.description -%}
            {%- do statements.append(
                'comment on ' ~ kind ~ ' ' ~ relation ~ ' is ' ~ description_literal(node.description)) -%}
        {%- endif -%}
        {%- for name, column in node.columns.items()
            if column.description and name in columns.get(node.alias, []) -%}
            {%- do statements.append('comment on column ' ~ relation ~ '.' ~ adapter.quote(name)
                ~ ' is ' ~ description_literal(column.description)) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if statements -%}{%- do run_query(statements | join(';\n')) -%}{%- endif -%}
    {{ return('') }}
{% endmacro %}

{#- Spark writes column comments only for Delta, Iceberg and Hudi tables (docs/spark.md): none. -#}
{% macro spark__persist_descriptions(results) %}{{ return('') }}{% endmacro %}

{#- `text` as a DuckDB string literal. -#}
{% macro description_literal(text) %}{{ return("'" ~ text | replace("'", "''") ~ "'") }}{% endmacro %}

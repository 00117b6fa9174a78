{#-
    on-run-end: the descriptions of the models and seeds this run built, as DuckDB comments on
    their tables, views and columns, readable with
    `select table_name, column_name, comment from duckdb_columns()`.

    dbt's persist_docs config does this one relation at a time, each with a query for its columns
    and a batch of its own: about an eighth of the build of a small export (CHANGELOG.md). Here it
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
    {#- what each built relation is in the database (a table or a view) and its columns, found
        wherever a model's config put it, in one query -#}
    {%- set where = [] -%}
    {%- for node in built -%}
        {%- do where.append('(relation.database_name, relation.schema_name, relation.name) = ('
            ~ description_literal(node.database) ~ ', ' ~ description_literal(node.schema)
            ~ ', ' ~ description_literal(node.alias) ~ ')') -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select relation.database_name || '.' || relation.schema_name || '.' || relation.name,"
        ~ " relation.kind, col.column_name"
        ~ " from (select database_name, schema_name, table_name as name, 'table' as kind"
        ~ " from duckdb_tables() union all select database_name, schema_name, view_name, 'view'"
        ~ " from duckdb_views() where not internal) as relation"
        ~ " left join duckdb_columns() as col on col.database_name = relation.database_name"
        ~ " and col.schema_name = relation.schema_name and col.table_name = relation.name"
        ~ " where " ~ where | join(' or ')) -%}
    {%- set kinds, columns = {}, {} -%}
    {%- for key, kind, column in found.rows -%}
        {%- do kinds.update({key: kind}) -%}
        {%- do columns.setdefault(key, []).append(column) -%}
    {%- endfor -%}
    {%- set statements = [] -%}
    {%- for node in built -%}
        {%- set key = node.database ~ '.' ~ node.schema ~ '.' ~ node.alias -%}
        {%- set kind = kinds.get(key) -%}
        {%- set relation = api.Relation.create(
            database=node.database, schema=node.schema, identifier=node.alias, type=kind) -%}
        {%- if kind and node.description -%}
            {%- do statements.append('comment on ' ~ kind ~ ' ' ~ relation ~ ' is '
                ~ description_literal(node.description)) -%}
        {%- endif -%}
        {%- for name, column in node.columns.items()
            if kind and column.description and name in columns[key] -%}
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

-- Stops the build, before the models that join the export's tables (the payload is never built),
-- on a row of conversions, line_users or user_master that is a header line. Files joined with
-- `cat` (or an export appended to a file) keep each file's header as a row; when the second one
-- orders its columns otherwise, every row
-- after it is read under the wrong names, and conversions whose event_name then holds a user id
-- are no conversions at all: lost without a word. Such a row's user_id is a column's name, which
-- no user's id is. page_views is not read again here: a second read of the largest table costs
-- about a second per 10M rows of CSV, and a header row there loses page-view signals, not
-- conversions. A table read from Parquet (DuckDB) has no such rows and is not read again.
-- The check runs once, while the test compiles, so that its error can say what to do (a failing
-- data test prints only its name and row count); only when the test runs, as
-- assert_no_conversion_times_hours_ahead does.
{%- set checked = ['conversions', 'line_users', 'user_master'] %}
{%- if execute and flags.WHICH in ('build', 'test', 'retry') %}
    {%- set parquet = [] %}
    {%- if target.type == 'duckdb' %}
        {%- set schema = source('karte', checked[0]).schema %}
        {%- for row in run_query("select lower(view_name) from duckdb_views() where schema_name = "
            ~ dbt.string_literal(schema) ~ " and contains(sql, 'read_parquet(')") %}
            {%- do parquet.append(row[0]) %}
        {%- endfor %}
    {%- endif %}
    {%- set counts = [] %}
    {%- for table_name in checked if table_name not in parquet %}
        {%- set relation = source('karte', table_name) %}
        {%- set mapping = karte_column_map().get(table_name) or {} %}
        {#- a header line holds the export's names (mapped or not) and any extra column's -#}
        {%- set names = [] %}
        {%- for name, _ in karte_export_contract()[table_name] %}
            {%- do names.append(name | lower) %}
            {%- do names.append((mapping.get(name) or name) | string | lower) %}
        {%- endfor %}
        {%- for column in adapter.get_columns_in_relation(relation) %}
            {%- do names.append(column.name | lower) %}
        {%- endfor %}
        {%- set read_as = {} if karte_export_views_use_contract_names() else mapping %}
        {%- set user_id = 'cast(' ~ adapter.quote(read_as.get('user_id') or 'user_id') ~ ' as ' ~ dbt.type_string() ~ ')' %}
        {%- set listed = [] %}
        {%- for name in names | unique %}
            {%- do listed.append(dbt.string_literal(dbt.escape_single_quotes(name))) %}
        {%- endfor %}
        {%- do counts.append("select " ~ dbt.string_literal(table_name) ~ " as table_name, count(*) as header_rows"
            ~ " from " ~ relation ~ " where lower(trim(" ~ user_id ~ ")) in (" ~ listed | join(', ') ~ ")") %}
    {%- endfor %}
    {%- for row in (run_query(counts | join(' union all ')).rows if counts else []) if row[1] > 0 %}
        {{ exceptions.raise_compiler_error(
            "KARTE export table " ~ row[0] ~ " has " ~ row[1] ~ " row" ~ ("s" if row[1] != 1 else "")
            ~ " that " ~ ("are header lines" if row[1] != 1 else "is a header line") ~ " (whose user_id is a column's name):"
            ~ " files joined with cat keep each one's header, and one in another column order puts every row after"
            ~ " it under the wrong names. Give each file as a part of its own (" ~ row[0] ~ "-1.csv, " ~ row[0]
            ~ "-2.csv: parts are matched by column name, docs/input-contract.md), or drop the repeated header lines"
        ) }}
    {%- endfor %}
{%- endif %}

-- nothing left to find: the query above found nothing (the sources, named, run this test first)
{%- for table_name in checked %}
    select 1 as header_rows
    from {{ source('karte', table_name) }}
    where 1 = 0
    {% if not loop.last %}union all{% endif %}
{%- endfor %}

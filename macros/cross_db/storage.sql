{#- How this project's tables are stored, and rows deleted from them; whether a folder holds a file. -#}

{#- Whether `directory` holds a file named `name` (checked while executing; false while parsing). -#}
{% macro folder_has_file(directory, name) %}
    {{ return(adapter.dispatch('folder_has_file', 'line_capi')(directory, name)) }}
{% endmacro %}

{% macro default__folder_has_file(directory, name) %}{{ not_ported('folder_has_file') }}{% endmacro %}

{% macro duckdb__folder_has_file(directory, name) %}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set path = duckdb_glob_literal(directory.rstrip('/') ~ '/' ~ name) | replace("'", "''") -%}
    {{ return(run_query("select count(*) from glob('" ~ path ~ "')").columns[0].values()[0] > 0) }}
{% endmacro %}

{#- The sender reads DuckDB builds only, so a Spark build needs no marker file: never one. -#}
{% macro spark__folder_has_file(directory, name) %}{{ return(false) }}{% endmacro %}

{#-
    on-run-start: how the tables of this run are stored. The setting lasts as long as the dbt
    process: the sender's ledger, written by its own process, is stored as usual.
-#}
{% macro set_table_storage() %}
    {{ return(adapter.dispatch('set_table_storage', 'line_capi')()) }}
{% endmacro %}

{% macro default__set_table_storage() %}{{ not_ported('set_table_storage') }}{% endmacro %}

{#-
    Unless var compress_tables, text columns are written without compression: the tables are
    rebuilt every run and hold mostly random ids, hashes and JSON, where compression costs more
    build time than the smaller file is worth (docs/bench.md).
-#}
{% macro duckdb__set_table_storage() %}
    {%- if execute and not compress_tables() -%}
        {%- do run_query("set disabled_compression_methods = 'dictionary,fsst,dict_fsst'") -%}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}

{#- Spark stores tables its own way; the var is still checked, as every var is. -#}
{% macro spark__set_table_storage() %}{% do compress_tables() %}{{ return('') }}{% endmacro %}

{#- Delete the rows of `relation` for which `condition` is true. -#}
{% macro delete_rows_where(relation, condition) %}
    {{ return(adapter.dispatch('delete_rows_where', 'line_capi')(relation, condition)) }}
{% endmacro %}

{% macro default__delete_rows_where(relation, condition) %}{{ not_ported('delete_rows_where') }}{% endmacro %}

{% macro duckdb__delete_rows_where(relation, condition) %}
    {%- do run_query('delete from ' ~ relation ~ ' where ' ~ condition) -%}
{% endmacro %}

{#-
    Parquet tables take no DELETE, and a table cannot be overwritten from a query that reads it.
    The kept rows go through a scratch table, and only when there is a row to delete.
-#}
{% macro spark__delete_rows_where(relation, condition) %}
    {%- set found = run_query('select count(*) from ' ~ relation ~ ' where ' ~ condition).columns[0].values()[0] -%}
    {%- if found == 0 -%}{{ return('') }}{%- endif -%}
    {%- set kept = relation.incorporate(path={'identifier': relation.identifier ~ '__kept'}) -%}
    {%- do run_query('drop table if exists ' ~ kept) -%}
    {%- do run_query('create table ' ~ kept ~ ' as select * from ' ~ relation
        ~ ' where not coalesce(' ~ condition ~ ', false)') -%}
    {%- do run_query('insert overwrite table ' ~ relation ~ ' select * from ' ~ kept) -%}
    {%- do run_query('drop table ' ~ kept) -%}
{% endmacro %}

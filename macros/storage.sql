{#-
    on-run-start: how the tables of this run are stored. On DuckDB, unless var compress_tables,
    text columns are written without compression. The tables are rebuilt every run and hold
    mostly random ids, hashes and ~700 bytes of JSON per event: compressing them cost 10-15% of
    the build's time at 1M conversions, for a file about 2.9 times smaller (docs/bench.md,
    "Round 2").
    The setting lasts as long as the dbt process: the sender's ledger, written by its own
    process, is compressed as usual.
-#}
{% macro set_table_storage() %}{{ return(adapter.dispatch('set_table_storage', 'line_capi')()) }}{% endmacro %}

{#- Other engines store tables their own way; the var is still checked, as every var is. -#}
{% macro default__set_table_storage() %}{% do compress_tables() %}{{ return('') }}{% endmacro %}

{% macro duckdb__set_table_storage() %}
    {%- if execute and not compress_tables() -%}
        {%- do run_query("set disabled_compression_methods = 'dictionary,fsst,dict_fsst'") -%}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}

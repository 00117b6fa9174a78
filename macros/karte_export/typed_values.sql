{#-
    A column of an export file, of type `data_type` (the engine's name; none when unknown), as the
    text a text export holds for the same value: instants as ISO 8601 in UTC with `Z` (a timestamp
    without time zone is UTC; the session time zone never matters), dates as YYYY-MM-DD, numbers
    and booleans as the engine writes them, lists and structs (items) as JSON, bytes as UTF-8.
-#}
{% macro karte_export_value_as_text(expr, data_type) %}
    {{ return(adapter.dispatch('karte_export_value_as_text', 'line_capi')(expr, data_type)) }}
{% endmacro %}

{% macro default__karte_export_value_as_text(expr, data_type) %}
    {{- not_ported('karte_export_value_as_text') -}}
{% endmacro %}

{% macro duckdb__karte_export_value_as_text(expr, data_type) -%}
    {%- set type = (data_type or '') | upper -%}
    {%- if type == 'VARCHAR' -%}
        {{ expr }}
    {%- elif type.startswith('TIMESTAMP') -%}
        {%- set utc = "timezone('UTC', " ~ expr ~ ")" if 'TIME ZONE' in type else "cast(" ~ expr ~ " as timestamp)" -%}
        (case when epoch_us({{ utc }}) % 1000000 = 0 then strftime({{ utc }}, '%Y-%m-%dT%H:%M:%SZ')
            else strftime({{ utc }}, '%Y-%m-%dT%H:%M:%S.%fZ') end)
    {%- elif type == 'DATE' -%}
        strftime({{ expr }}, '%Y-%m-%d')
    {%- elif type == 'BLOB' -%}
        try(decode({{ expr }}))
    {%- elif type.endswith(']') or type.startswith('STRUCT') or type.startswith('MAP') or type.startswith('UNION') -%}
        cast(to_json({{ expr }}) as varchar)
    {%- else -%}
        cast({{ expr }} as varchar)
    {%- endif -%}
{%- endmacro %}

{#-
    The Spark sources are the files as registered (or the catalog's own tables): the staging
    models cast each column to text as Spark renders it, data_type unused (docs/spark.md, typed
    columns).
-#}
{% macro spark__karte_export_value_as_text(expr, data_type) %}cast({{ expr }} as string){% endmacro %}

{#-
    A column of an export file, of type `data_type` (the engine's name; none when unknown), as the
    text a text export holds for the same value: instants as ISO 8601 in UTC with `Z` (a timestamp
    without time zone is at var karte_export_utc_offset, UTC by default; the session time zone
    never matters), dates as YYYY-MM-DD (read as the offset's midnight), whole
    numbers as their digits (a DOUBLE or DECIMAL id `1001.0` or `1001.000000000` is `1001`, as the
    same id stored as INT64), other numbers and booleans as the engine writes them, lists and
    structs (items) as JSON, bytes as UTF-8.
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
        {#- TIMESTAMP WITH TIME ZONE and TIMESTAMPTZ_NS (pandas' datetime64[ns, UTC]) are instants;
            nanoseconds are truncated to microseconds, never rounded into the next second -#}
        {%- set has_zone = 'TIME ZONE' in type or type.startswith('TIMESTAMPTZ') -%}
        {%- set offset = karte_export_utc_offset_seconds() -%}
        {%- if type.endswith('_NS') -%}
            {%- set wall = "make_timestamp(epoch_ns(" ~ expr ~ ") // 1000)" -%}
        {%- elif has_zone -%}
            {%- set wall = "timezone('UTC', " ~ expr ~ ")" -%}
        {%- else -%}
            {%- set wall = "cast(" ~ expr ~ " as timestamp)" -%}
        {%- endif -%}
        {%- set utc = wall if has_zone or not offset else "(" ~ wall ~ " - to_seconds(" ~ offset ~ "))" -%}
        (case when epoch_us({{ utc }}) % 1000000 = 0 then strftime({{ utc }}, '%Y-%m-%dT%H:%M:%SZ')
            else strftime({{ utc }}, '%Y-%m-%dT%H:%M:%S.%fZ') end)
    {%- elif type == 'DATE' -%}
        strftime({{ expr }}, '%Y-%m-%d')
    {%- elif type.startswith('DECIMAL') or type in ('DOUBLE', 'FLOAT', 'REAL') -%}
        {#- abs() < 1e30 also leaves NaN and infinity to the plain cast -#}
        (case when abs({{ expr }}) < 1e30 and {{ expr }} = trunc({{ expr }})
            then cast(cast({{ expr }} as hugeint) as varchar) else cast({{ expr }} as varchar) end)
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
    models cast each column to text as Spark renders it (docs/spark.md, typed columns), except
    timestamps, written as on DuckDB: ISO 8601 in UTC with `Z` (the session time zone is UTC, set
    in the profile), a `timestamp_ntz` being at var karte_export_utc_offset.
-#}
{% macro spark__karte_export_value_as_text(expr, data_type) -%}
    {%- set type = (data_type or '') | lower -%}
    {%- if type in ('timestamp', 'timestamp_ltz', 'timestamp_ntz') -%}
        {%- set offset = karte_export_utc_offset_seconds() if type == 'timestamp_ntz' else 0 -%}
        {%- set utc = "cast(" ~ expr ~ " as timestamp)" -%}
        {%- if offset -%}
            {%- set utc = "(" ~ utc ~ " - make_dt_interval(0, 0, 0, " ~ offset ~ "))" -%}
        {%- endif -%}
        (case when unix_micros({{ utc }}) % 1000000 = 0
            then date_format({{ utc }}, {{ spark_text_literal("yyyy-MM-dd'T'HH:mm:ss'Z'") }})
            else date_format({{ utc }}, {{ spark_text_literal("yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'") }}) end)
    {%- else -%}
        cast({{ expr }} as string)
    {%- endif -%}
{%- endmacro %}

{#-
    Whether `data_type` (the engine's name, any case; none when unknown) holds several values in
    one cell: a list, struct, map or union (DuckDB `VARCHAR[]`, `STRUCT(...)`; Spark
    `array<string>`, `struct<...>`). Only `items` may.
-#}
{% macro karte_export_is_nested(data_type) %}
    {%- set type = (data_type or '') | upper -%}
    {{ return(type.endswith(']') or type.startswith(('STRUCT', 'MAP', 'UNION', 'ARRAY'))) }}
{% endmacro %}

{#-
    Whether `data_type` (the engine's name, any case; none when unknown) holds numbers.
-#}
{% macro karte_export_is_number(data_type) %}
    {%- set type = (data_type or '') | upper -%}
    {{ return(type.startswith('DECIMAL') or type.startswith('NUMERIC') or type in (
        'DOUBLE', 'FLOAT', 'REAL', 'TINYINT', 'SMALLINT', 'INTEGER', 'INT', 'BIGINT', 'HUGEINT',
        'UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT', 'UHUGEINT', 'LONG', 'SHORT', 'BYTE'
    )) }}
{% endmacro %}

{#-
    A phone number stored as a number (a spreadsheet's or pandas' column, a user master typed
    INT64), as text, `text_expr` being its digits: the number lost its leading 0, which every
    Japanese number written without its country code has. A 9- or 10-digit number gets it back
    (`9012345678`: `09012345678`); a longer one keeps its country code (`819012345678`).
-#}
{% macro karte_export_phone_from_number(text_expr) -%}
    (case when length({{ text_expr }}) in (9, 10) then '0' || {{ text_expr }} else {{ text_expr }} end)
{%- endmacro %}

{#-
    A user id written as text with a zero fraction (`1001.0`: pandas writes an id column with a
    gap as floats, and so to CSV) as its digits, so that it joins the same user written `1001` in
    another table; any other text as it is. Only user ids, which join the tables and are never
    sent: a key or a page view id is left as the export wrote it.
-#}
{% macro karte_export_user_id_from_text(text_expr) -%}
    (case when {{ text_expr }} like '%.0%' and {{ regex_full_match(text_expr, '^-?[0-9]+[.]0+$') }}
        then {{ regex_remove(text_expr, '[.]0+$') }} else {{ text_expr }} end)
{%- endmacro %}

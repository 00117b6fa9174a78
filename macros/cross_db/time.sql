{#- Time: export timestamps as Unix seconds, and Unix seconds as timestamps. -#}

{#-
    An ISO 8601 text as integer Unix seconds (fraction truncated), or null when it is not one.
    A text with an offset (`Z`, `+09:00`, `+0900`, also after a space) honours it; one without is at
    `utc_offset_seconds` from UTC (0: UTC; 32400: Japan time), and so is a date alone (its
    midnight). RFC 3339's lower-case `t` and `z` read as `T` and `Z`. Plain digits are epoch seconds (9-10 digits), milliseconds (12-13 digits) or
    microseconds (16 digits, BigQuery's UNIX_MICROS), as some exports write them; a fraction after them is truncated.
-#}
{% macro iso8601_to_unix_seconds(expr, utc_offset_seconds) %}
    {{ return(adapter.dispatch('iso8601_to_unix_seconds', 'line_capi')(expr, utc_offset_seconds | int)) }}
{% endmacro %}

{% macro default__iso8601_to_unix_seconds(expr, utc_offset_seconds) -%}
    {{ not_ported('iso8601_to_unix_seconds') }}
{%- endmacro %}

{#-
    Shaped for speed (docs/bench.md): the suffix tests for KARTE's `+09:00` and the Datahub
    queries' `Z` right after a digit come before the zone regexes; they only add a true the
    regexes give too, so the result is the same (after a space, `23:59:59 +09:00`, the regex's
    branch takes the space out first).
    A zone DuckDB would read, but as another place than the export meant, is not read: an offset
    beyond ±14:00 (`+99:00`), or an abbreviation other than UTC, GMT and JST, each of which names
    several zones (DuckDB reads BST as Bangladesh's, not British summer time, and IST as India's).
    A zone name with its area (`Asia/Tokyo`, `Europe/London`) is read.
-#}
{% macro duckdb__iso8601_to_unix_seconds(expr, utc_offset_seconds) -%}
    {#- A zone after the time: Z, +hh[[:]mm[[:]ss]] or a name (UTC, Asia/Tokyo); a date alone has none. -#}
    {%- set time = '[0-9]:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]*)?)?' -%}
    {%- set zone = '(?:[Zz]|[+-][0-9]{2}|[A-Za-z]{2,})' -%}
    {%- set has_zone = "regexp_matches(" ~ expr ~ ", '" ~ time ~ "\\s*" ~ zone ~ "')" -%}
    {#- the zones read, at the end of the text in upper case -#}
    {%- set known_offset = '[+-](?:0[0-9]|1[0-4])(?::?[0-5][0-9](?::?[0-5][0-9])?)?' -%}
    {%- set known_zone = '(?:Z|' ~ known_offset ~ '|UTC|GMT|JST|[A-Z][A-Z_]*/[A-Z0-9_/+-]+)' -%}
    {%- set zone_known = "regexp_matches(upper(" ~ expr ~ "), '" ~ time ~ "\\s*" ~ known_zone ~ "$')" -%}
    (case
        when {{ expr }} like '____-%' then
            case when ({{ expr }} like '%+09:00' and ascii(right({{ expr }}, 7)) between 48 and 57)
                    or ({{ expr }} like '%:%Z' and ascii(right({{ expr }}, 2)) between 48 and 57)
                then epoch_us(try_cast({{ expr }} as timestamptz)) // 1000000
            when {{ has_zone }}
                {#- DuckDB reads no space before a numeric offset (`12:00:00.000 +0900`, Snowflake's) #}
                then case when {{ zone_known }}
                    then epoch_us(try_cast(regexp_replace(upper({{ expr }}), '\s+([+-][0-9])', '\1') as timestamptz)) // 1000000 end
                else epoch_us(try_cast(upper({{ expr }}) as timestamp)) // 1000000
                    {%- if utc_offset_seconds %} - ({{ utc_offset_seconds }}){% endif %} end
        {# a fraction truncated: pandas writes an integer column with gaps as floats (1764554400.0) #}
        when regexp_full_match({{ expr }}, '[0-9]{9,10}(?:[.][0-9]*)?') then try_cast(split_part({{ expr }}, '.', 1) as bigint)
        when regexp_full_match({{ expr }}, '[0-9]{12,13}(?:[.][0-9]*)?') then try_cast(split_part({{ expr }}, '.', 1) as bigint) // 1000
        when regexp_full_match({{ expr }}, '[0-9]{16}(?:[.][0-9]*)?') then try_cast(split_part({{ expr }}, '.', 1) as bigint) // 1000000
        {# not ISO 8601 (2025/12/31 16:41, 01/01/2026): null, not a guess at its zone or day order #}
    end)
{%- endmacro %}

{#-
    What DuckDB's try_cast(text as timestamptz / timestamp) reads, normalized for Spark's cast:
    `yyyy-m-d`, then optionally `[T ]h:m`, `:s`, `.fraction` (any length, truncated to
    microseconds), then optionally (after a space or not) `Z`, `+hh`, `+hhmm` or `+hh:mm`. Without
    an offset the text gets `utc_offset_seconds` as one (`Z` for 0), whatever
    spark.sql.session.timeZone is. The zone names `UTC` and `GMT` after a space are `Z`. Lower-case
    `t` and `z` are read as upper-case. Anything else is null, as are impossible dates. Plain digits are epoch seconds (9-10), milliseconds (12-13) or microseconds (16), a fraction after them truncated.
    Known differences from DuckDB (texts KARTE does not write): DuckDB also reads `24:00:00`
    (next day), 5-digit years, and the zone names ` JST` and ` Asia/Tokyo` (area/place), which it honours.
-#}
{% macro spark__iso8601_to_unix_seconds(expr, utc_offset_seconds) -%}
    {%- set date = '([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})' -%}
    {%- set time = '(?:[T ]([0-9]{1,2}:[0-9]{1,2})(?::([0-9]{1,2})(\\.[0-9]*)?)?)?' -%}
    {#- an offset, or after a space the zone UTC or GMT (BigQuery writes a TIMESTAMP to CSV as `… UTC`) -#}
    {%- set offset = '(?: ?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)| (UTC|GMT))?' -%}
    {%- set iso = '^' ~ date ~ time ~ offset ~ '$' -%}
    {#- date T hh:mm : ss .fraction | offset or zone; then the missing parts get their defaults -#}
    {%- set parts = "regexp_replace(iso_text, " ~ spark_java_regex(iso) ~ ", '$1T$2:$3$4|$5$6')" -%}
    {%- set zones = "replace(replace(" ~ parts ~ ", '|UTC', '|Z'), '|GMT', '|Z')" -%}
    {%- set defaults = "replace(replace(" ~ zones ~ ", 'T:|', 'T00:00:00|'), ':|', ':00|')" -%}
    {%- set minutes = (utc_offset_seconds | abs) // 60 -%}
    {%- set sign = '+' if utc_offset_seconds >= 0 else '-' -%}
    {%- set default_offset = sign ~ '%02d:%02d' | format(minutes // 60, minutes % 60) if utc_offset_seconds else 'Z' -%}
    {%- set normalized = "replace(regexp_replace(" ~ defaults ~ ", '[|]$', '|" ~ default_offset ~ "'), '|', '')" -%}
    {{ spark_let('upper(' ~ expr ~ ')', 'iso_text', "
        case
            when " ~ spark__regex_full_match('iso_text', '^[0-9]{9,10}(?:[.][0-9]*)?$') ~ " then try_cast(substring_index(iso_text, '.', 1) as bigint)
            when " ~ spark__regex_full_match('iso_text', '^[0-9]{12,13}(?:[.][0-9]*)?$') ~ " then try_cast(substring_index(iso_text, '.', 1) as bigint) div 1000
            when " ~ spark__regex_full_match('iso_text', '^[0-9]{16}(?:[.][0-9]*)?$') ~ " then try_cast(substring_index(iso_text, '.', 1) as bigint) div 1000000
            when " ~ spark__regex_full_match('iso_text', iso) ~ "
                then unix_micros(try_cast(" ~ normalized ~ " as timestamp)) div 1000000
        end") }}
{%- endmacro %}

{#- Integer Unix seconds to a UTC timestamp (without time zone). -#}
{% macro unix_seconds_to_timestamp(expr) %}
    {{ return(adapter.dispatch('unix_seconds_to_timestamp', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__unix_seconds_to_timestamp(expr) %}{{ not_ported('unix_seconds_to_timestamp') }}{% endmacro %}

{% macro duckdb__unix_seconds_to_timestamp(expr) %}make_timestamp(({{ expr }}) * 1000000){% endmacro %}

{#- A UTC timestamp without time zone, whatever the session time zone. -#}
{% macro spark__unix_seconds_to_timestamp(expr) -%}
    timestampadd(SECOND, {{ expr }}, timestamp_ntz'1970-01-01 00:00:00')
{%- endmacro %}

{#-
    The build's time zone is UTC, whatever the machine's: where DuckDB itself turns a time without
    a zone into an instant (Parquet parts of one table, one with a zone and one without, read as
    one), it reads it as UTC, as the contract does. Spark's is set in its profile
    (spark.sql.session.timeZone).
-#}
{% macro set_build_time_zone() %}
    {{ return(adapter.dispatch('set_build_time_zone', 'line_capi')()) }}
{% endmacro %}

{% macro default__set_build_time_zone() %}{{ not_ported('set_build_time_zone') }}{% endmacro %}

{% macro duckdb__set_build_time_zone() %}
    {%- if execute -%}
        {%- do run_query("set global TimeZone = 'UTC'") -%}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}

{% macro spark__set_build_time_zone() %}{{ return('') }}{% endmacro %}

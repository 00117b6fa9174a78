{#- URLs: a query parameter's raw value, and percent-decoding. -#}

{#-
    The raw value of the first `name=` parameter of a URL's query string (before any `#`),
    not yet percent-decoded; null when absent.
-#}
{% macro url_query_parameter(url, name) %}
    {{ return(adapter.dispatch('url_query_parameter', 'line_capi')(url, name)) }}
{% endmacro %}

{% macro default__url_query_parameter(url, name) %}{{ not_ported('url_query_parameter') }}{% endmacro %}

{% macro duckdb__url_query_parameter(url, name) -%}
    {{ regex_extract(url, '^[^?#]*\\?(?:[^#]*?&)??' ~ name ~ '=([^&#]*)') }}
{%- endmacro %}

{#- Built on regex_extract, which is Spark's already. -#}
{% macro spark__url_query_parameter(url, name) -%}
    {{ return(duckdb__url_query_parameter(url, name)) }}
{%- endmacro %}

{#- Percent-decoding of a URL component (`%2D` to `-`). -#}
{% macro url_decode(expr) %}
    {{ return(adapter.dispatch('url_decode', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__url_decode(expr) %}{{ not_ported('url_decode') }}{% endmacro %}

{% macro duckdb__url_decode(expr) %}try(url_decode({{ expr }})){% endmacro %}

{#-
    DuckDB's url_decode: `+` stays `+`, a `%` not followed by two hex digits stays as it is, and a
    text whose escapes do not form UTF-8 is null. Spark's url_decode (java.net.URLDecoder) turns
    `+` into a space, raises on a malformed `%`, and puts U+FFFD for bytes that are not UTF-8; so
    `+` and lone `%` are escaped first, and a result with more U+FFFD than the text itself meant
    (literal U+FFFD or %EF%BF%BD) is null.
-#}
{% macro spark__url_decode(expr) -%}
    {%- set escaped = "regexp_replace(replace(url_text, '+', '%2B'), '%(?![0-9A-Fa-f]{2})', '%25')" -%}
    {{ spark_let(expr, 'url_text', "
        case
            when length(url_decode(" ~ escaped ~ ")) - length(replace(url_decode(" ~ escaped ~ "), '\\uFFFD', ''))
                > length(url_text) - length(replace(url_text, '\\uFFFD', ''))
                    + regexp_count(" ~ escaped ~ ", '(?i)%EF%BF%BD')
                then null
            else url_decode(" ~ escaped ~ ")
        end") }}
{%- endmacro %}

{#-
    Building the event's JSON text: strings, numbers, arrays of strings and objects, with the
    same text on every engine (LINE takes no nulls and no empty objects).
-#}

{#- A text as a JSON string (quoted, escaped); null stays null. -#}
{% macro json_string(expr) %}
    {{ return(adapter.dispatch('json_string', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__json_string(expr) %}{{ not_ported('json_string') }}{% endmacro %}

{% macro duckdb__json_string(expr) %}cast(to_json(cast({{ expr }} as varchar)) as varchar){% endmacro %}

{#- to_json of a one-field struct, without `{"v":` and `}`; null stays null. -#}
{% macro spark__json_string(expr) -%}
    (case when ({{ expr }}) is not null then
        substring(to_json(named_struct('v', cast({{ expr }} as string))), 6,
            length(to_json(named_struct('v', cast({{ expr }} as string)))) - 6)
    end)
{%- endmacro %}

{#-
    A text already checked against a pattern without quotes, backslashes or control characters
    (keys, hashes, ids, IPs, currency codes) as a JSON string: quoting is enough, no escaping.
-#}
{% macro json_plain_string(expr) %}
    {{ return(adapter.dispatch('json_plain_string', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__json_plain_string(expr) %}{{ not_ported('json_plain_string') }}{% endmacro %}

{% macro duckdb__json_plain_string(expr) %}('"' || ({{ expr }}) || '"'){% endmacro %}

{% macro spark__json_plain_string(expr) %}concat('"', {{ expr }}, '"'){% endmacro %}

{#- A number as a JSON number, whole numbers without a fraction (1200, not 1200.0); null stays null. -#}
{% macro json_number(expr) %}
    {{ return(adapter.dispatch('json_number', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__json_number(expr) %}{{ not_ported('json_number') }}{% endmacro %}

{% macro duckdb__json_number(expr) -%}
    case when ({{ expr }}) = floor({{ expr }}) and abs({{ expr }}) < 1e15
        then cast(cast({{ expr }} as bigint) as varchar)
        else cast(cast({{ expr }} as double) as varchar) end
{%- endmacro %}

{#- Spark renders a double as Java does (19.5, 1.0E-4): JSON numbers, parsed as DuckDB's are. -#}
{% macro spark__json_number(expr) -%}
    case when ({{ expr }}) = floor({{ expr }}) and abs({{ expr }}) < 1e15
        then cast(cast({{ expr }} as bigint) as string)
        else cast(cast({{ expr }} as double) as string) end
{%- endmacro %}

{#- A text array as a JSON array of strings. -#}
{% macro json_string_array(expr) %}
    {{ return(adapter.dispatch('json_string_array', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__json_string_array(expr) %}{{ not_ported('json_string_array') }}{% endmacro %}

{% macro duckdb__json_string_array(expr) %}cast(to_json({{ expr }}) as varchar){% endmacro %}

{% macro spark__json_string_array(expr) %}to_json({{ expr }}){% endmacro %}

{#-
    A JSON object from (key, JSON value text) pairs. Pairs whose value is null are left out,
    and an object left with no pair is null: LINE takes no nulls and no empty objects.
-#}
{% macro json_object(pairs) %}
    {{ return(adapter.dispatch('json_object', 'line_capi')(pairs)) }}
{% endmacro %}

{% macro default__json_object(pairs) %}{{ not_ported('json_object') }}{% endmacro %}

{% macro duckdb__json_object(pairs) -%}
    nullif('{' || concat_ws(','
        {%- for key, value in pairs %},
            '"{{ key }}":' || ({{ value }})
        {%- endfor %}
    ) || '}', '{}')
{%- endmacro %}

{#- Spark's concat_ws skips nulls and `||` with a null is null, as DuckDB's: the same SQL. -#}
{% macro spark__json_object(pairs) -%}
    {{ return(duckdb__json_object(pairs)) }}
{%- endmacro %}

{#- KARTE's `items` JSON: parsed once, then the distinct item ids and the total quantity. -#}

{#-
    KARTE's `items` JSON text (an array of objects with `item_id` and optional `quantity`) as an
    engine array of structs (item_id text, quantity text); null when the text is not such JSON.
-#}
{% macro parse_items(expr) %}
    {{ return(adapter.dispatch('parse_items', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__parse_items(expr) %}{{ not_ported('parse_items') }}{% endmacro %}

{% macro duckdb__parse_items(expr) -%}
    try(from_json(
        case when json_valid({{ expr }}) and json_type({{ expr }}) = 'ARRAY' then {{ expr }} end,
        '[{"item_id": "VARCHAR", "quantity": "VARCHAR"}]'
    ))
{%- endmacro %}

{#-
    Only a JSON array: Spark's from_json would read a lone object as an array of one.
    Known differences from DuckDB on malformed items (not seen in KARTE exports): an array of
    non-objects (`[1, 2]`) is null here and two empty items on DuckDB; a duplicated key keeps
    its last value here and its first on DuckDB; trailing text after the array is ignored here.
-#}
{% macro spark__parse_items(expr) -%}
    (case when {{ expr }} rlike '^[ \t\n\r]*\\[' then
        from_json({{ expr }}, 'array<struct<item_id:string,quantity:string>>')
    end)
{%- endmacro %}

{#- The distinct, non-empty item ids of parsed items, in first-seen order, at most `limit`. -#}
{% macro items_distinct_ids(items, limit) %}
    {{ return(adapter.dispatch('items_distinct_ids', 'line_capi')(items, limit)) }}
{% endmacro %}

{% macro default__items_distinct_ids(items, limit) %}{{ not_ported('items_distinct_ids') }}{% endmacro %}

{% macro duckdb__items_distinct_ids(items, limit) -%}
    {%- set ids = "list_filter(list_transform(" ~ items ~ ", lambda i: trim(i.item_id)), lambda id: id <> '')" -%}
    list_slice(list_filter({{ ids }}, lambda id, n: list_position({{ ids }}, id) = n), 1, {{ limit }})
{%- endmacro %}

{#- array_distinct keeps the first occurrence, in order. -#}
{% macro spark__items_distinct_ids(items, limit) -%}
    slice(array_distinct(filter(transform({{ items }}, item -> trim(item.item_id)), id -> id <> '')), 1, {{ limit }})
{%- endmacro %}

{#- Sum of the items' quantities, an absent or non-numeric quantity counting as 1. -#}
{% macro items_total_quantity(items) %}
    {{ return(adapter.dispatch('items_total_quantity', 'line_capi')(items)) }}
{% endmacro %}

{% macro default__items_total_quantity(items) %}{{ not_ported('items_total_quantity') }}{% endmacro %}

{% macro duckdb__items_total_quantity(items) -%}
    list_sum(list_transform({{ items }}, lambda i: coalesce(try_cast(i.quantity as double), 1)))
{%- endmacro %}

{% macro spark__items_total_quantity(items) -%}
    aggregate({{ items }}, cast(0 as double),
        (total, item) -> total + coalesce({{ spark__to_number_or_null('item.quantity') }}, cast(1 as double)))
{%- endmacro %}

{#- The number of elements of an array, 0 for null. -#}
{% macro array_length(expr) %}
    {{ return(adapter.dispatch('array_length', 'line_capi')(expr)) }}
{% endmacro %}

{% macro default__array_length(expr) %}{{ not_ported('array_length') }}{% endmacro %}

{% macro duckdb__array_length(expr) %}coalesce(len({{ expr }}), 0){% endmacro %}

{#- size(null) is -1 with spark.sql.legacy.sizeOfNull (ANSI off), null otherwise: neither is 0. -#}
{% macro spark__array_length(expr) %}(case when {{ expr }} is null then 0 else size({{ expr }}) end){% endmacro %}

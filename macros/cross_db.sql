{#-
    Engine-specific SQL lives here and only here, the dbt-utils way: a one-line
    `adapter.dispatch` wrapper and one body per engine. `default__` is DuckDB's dialect;
    porting to another engine means adding `<engine>__` bodies to this file.
-#}

{#- Lowercase hex SHA-256 of a text (UTF-8). -#}
{% macro sha256_hex(expr) %}{{ return(adapter.dispatch('sha256_hex', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__sha256_hex(expr) %}sha256({{ expr }}){% endmacro %}

{#- True when the whole text matches `pattern` (an anchored RE2/Java regex); null for null. -#}
{% macro regex_full_match(expr, pattern) %}{{ return(adapter.dispatch('regex_full_match', 'line_capi')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_full_match(expr, pattern) %}regexp_matches({{ expr }}, '{{ pattern }}'){% endmacro %}

{#- The first capture group of `pattern` in the text, or null when it does not match. -#}
{% macro regex_extract(expr, pattern) %}{{ return(adapter.dispatch('regex_extract', 'line_capi')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_extract(expr, pattern) %}nullif(regexp_extract({{ expr }}, '{{ pattern }}', 1), ''){% endmacro %}

{#- Text with every match of `pattern` removed. -#}
{% macro regex_remove(expr, pattern) %}{{ return(adapter.dispatch('regex_remove', 'line_capi')(expr, pattern)) }}{% endmacro %}
{% macro default__regex_remove(expr, pattern) %}regexp_replace({{ expr }}, '{{ pattern }}', '', 'g'){% endmacro %}

{#- Percent-decoding of a URL component (`%2D` to `-`). -#}
{% macro url_decode(expr) %}{{ return(adapter.dispatch('url_decode', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__url_decode(expr) %}try(url_decode({{ expr }})){% endmacro %}

{#-
    The raw value of the first `name=` parameter of a URL's query string (before any `#`),
    not yet percent-decoded; null when absent.
-#}
{% macro url_query_parameter(url, name) %}{{ return(adapter.dispatch('url_query_parameter', 'line_capi')(url, name)) }}{% endmacro %}
{% macro default__url_query_parameter(url, name) -%}
    {{ regex_extract(url, '^[^?#]*\\?(?:[^#]*?&)??' ~ name ~ '=([^&#]*)') }}
{%- endmacro %}

{#- Whitespace trim of the ASCII whitespace characters (space, tab, LF, VT, FF, CR). -#}
{% macro trim_ascii(expr) %}{{ return(adapter.dispatch('trim_ascii', 'line_capi')(expr)) }}{% endmacro %}
{#-
    Most values have nothing to trim: test the first and last character before calling trim().
    x[-1] finds the last character from the end; right(x, 1) walks the whole text to find it.
-#}
{% macro default__trim_ascii(expr) -%}
    (case when ascii({{ expr }}) > 32 and ascii(({{ expr }})[-1]) > 32 then {{ expr }}
        else trim({{ expr }}, chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) end)
{%- endmacro %}

{#- Full-width ASCII (U+FF01..U+FF5E) and the ideographic space (U+3000) to their ASCII forms. -#}
{% macro halfwidth_ascii(expr) %}{{ return(adapter.dispatch('halfwidth_ascii', 'line_capi')(expr)) }}{% endmacro %}
{#- translate() with 95 characters is slow: only texts with a non-ASCII character need it. -#}
{% macro default__halfwidth_ascii(expr) -%}
    (case when strlen({{ expr }}) = length({{ expr }}) then {{ expr }}
        else translate({{ expr }}, '{{ fullwidth_ascii_chars() }}', '{{ halfwidth_ascii_chars() | replace("'", "''") }}') end)
{%- endmacro %}

{#- U+3000 then U+FF01..U+FF5E, and the ASCII characters they stand for, position by position. -#}
{% macro fullwidth_ascii_chars() %}{{ return('　！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～') }}{% endmacro %}
{% macro halfwidth_ascii_chars() %}{{ return(' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~') }}{% endmacro %}

{#-
    An ISO 8601 text as integer Unix seconds (fraction truncated), or null when it is not one.
    A text with an offset (`Z`, `+09:00`, `+0900`) honours it; one without is UTC. Plain digits are
    epoch seconds (9-10 digits) or epoch milliseconds (12-13 digits), as some exports write them.
-#}
{% macro iso8601_to_unix_seconds(expr) %}{{ return(adapter.dispatch('iso8601_to_unix_seconds', 'line_capi')(expr)) }}{% endmacro %}
{#-
    KARTE writes `+09:00`: an exact suffix test (LIKE without wildcards but the leading one is a
    suffix compare, a third of the regex's cost) settles those texts before the offset regex; it
    only adds a true the regex gives too, so the result is the same.
-#}
{% macro default__iso8601_to_unix_seconds(expr) -%}
    {#- A zone after the time: Z, +hh[[:]mm[[:]ss]] or a name (UTC, Asia/Tokyo); a date alone has none. -#}
    {%- set has_zone = "regexp_matches(" ~ expr ~ ", '[0-9]:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]*)?)?\\s*(?:[Zz]|[+-][0-9]{2}|[A-Za-z]{2,})')" -%}
    (case
        when {{ expr }} like '____-%' then
            case when {{ expr }} like '%+09:00' or {{ has_zone }}
                then epoch_us(try_cast({{ expr }} as timestamptz)) // 1000000
                else epoch_us(try_cast({{ expr }} as timestamp)) // 1000000 end
        when regexp_full_match({{ expr }}, '[0-9]{9,10}') then try_cast({{ expr }} as bigint)
        when regexp_full_match({{ expr }}, '[0-9]{12,13}') then try_cast({{ expr }} as bigint) // 1000
        when {{ has_zone }} then epoch_us(try_cast({{ expr }} as timestamptz)) // 1000000
        else epoch_us(try_cast({{ expr }} as timestamp)) // 1000000
    end)
{%- endmacro %}

{#- A text as a double, or null when it is not a number. -#}
{% macro to_number_or_null(expr) %}{{ return(adapter.dispatch('to_number_or_null', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__to_number_or_null(expr) %}try_cast({{ expr }} as double){% endmacro %}

{#- Integer Unix seconds to a UTC timestamp (without time zone). -#}
{% macro unix_seconds_to_timestamp(expr) %}{{ return(adapter.dispatch('unix_seconds_to_timestamp', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__unix_seconds_to_timestamp(expr) %}make_timestamp(({{ expr }}) * 1000000){% endmacro %}

{#- A text as a JSON string (quoted, escaped); null stays null. -#}
{% macro json_string(expr) %}{{ return(adapter.dispatch('json_string', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__json_string(expr) %}cast(to_json(cast({{ expr }} as varchar)) as varchar){% endmacro %}

{#-
    A text already checked against a pattern without quotes, backslashes or control characters
    (keys, hashes, ids, IPs, currency codes) as a JSON string: quoting is enough, no escaping.
-#}
{% macro json_plain_string(expr) %}{{ return(adapter.dispatch('json_plain_string', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__json_plain_string(expr) %}('"' || ({{ expr }}) || '"'){% endmacro %}

{#- A number as a JSON number, whole numbers without a fraction (1200, not 1200.0); null stays null. -#}
{% macro json_number(expr) %}{{ return(adapter.dispatch('json_number', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__json_number(expr) -%}
    case when ({{ expr }}) = floor({{ expr }}) and abs({{ expr }}) < 1e15
        then cast(cast({{ expr }} as bigint) as varchar)
        else cast(cast({{ expr }} as double) as varchar) end
{%- endmacro %}

{#-
    A JSON object from (key, JSON value text) pairs. Pairs whose value is null are left out,
    and an object left with no pair is null: LINE takes no nulls and no empty objects.
-#}
{% macro json_object(pairs) %}{{ return(adapter.dispatch('json_object', 'line_capi')(pairs)) }}{% endmacro %}
{% macro default__json_object(pairs) -%}
    nullif('{' || concat_ws(','
        {%- for key, value in pairs %},
            '"{{ key }}":' || ({{ value }})
        {%- endfor %}
    ) || '}', '{}')
{%- endmacro %}

{#-
    KARTE's `items` JSON text (an array of objects with `item_id` and optional `quantity`) as an
    engine array of structs (item_id text, quantity text); null when the text is not such JSON.
-#}
{% macro parse_items(expr) %}{{ return(adapter.dispatch('parse_items', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__parse_items(expr) -%}
    try(from_json(
        case when json_valid({{ expr }}) and json_type({{ expr }}) = 'ARRAY' then {{ expr }} end,
        '[{"item_id": "VARCHAR", "quantity": "VARCHAR"}]'
    ))
{%- endmacro %}

{#- The distinct, non-empty item ids of parsed items, in first-seen order, at most `limit`. -#}
{% macro items_distinct_ids(items, limit) %}{{ return(adapter.dispatch('items_distinct_ids', 'line_capi')(items, limit)) }}{% endmacro %}
{% macro default__items_distinct_ids(items, limit) -%}
    {%- set ids = "list_filter(list_transform(" ~ items ~ ", lambda i: trim(i.item_id)), lambda id: id <> '')" -%}
    list_slice(list_filter({{ ids }}, lambda id, n: list_position({{ ids }}, id) = n), 1, {{ limit }})
{%- endmacro %}

{#- The number of elements of an array, 0 for null. -#}
{% macro array_length(expr) %}{{ return(adapter.dispatch('array_length', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__array_length(expr) %}coalesce(len({{ expr }}), 0){% endmacro %}

{#- A text array as a JSON array of strings. -#}
{% macro json_string_array(expr) %}{{ return(adapter.dispatch('json_string_array', 'line_capi')(expr)) }}{% endmacro %}
{% macro default__json_string_array(expr) %}cast(to_json({{ expr }}) as varchar){% endmacro %}

{#- Sum of the items' quantities, an absent or non-numeric quantity counting as 1. -#}
{% macro items_total_quantity(items) %}{{ return(adapter.dispatch('items_total_quantity', 'line_capi')(items)) }}{% endmacro %}
{% macro default__items_total_quantity(items) -%}
    list_sum(list_transform({{ items }}, lambda i: coalesce(try_cast(i.quantity as double), 1)))
{%- endmacro %}

{#-
    A select of, for each row of relation `events`, the `candidates` row with the same
    `partition_by` column and the latest `candidate_time` at or before `event_time`, a tie going
    to the largest `tie_break` (a non-null text column of `candidates`). Events with no such
    candidate, or a null time, are left out, like an inner join; a null candidate_time never
    matches. Times are integers (Unix seconds). `event_id` is a column, or a list of columns,
    unique and non-null in `events`. `event_columns` and `candidate_columns` are the columns
    selected from each side (distinct names).
    DuckDB runs it as one ASOF JOIN: one probe per event, no fan-out, no window. ASOF allows one
    inequality, so time and tie-break are compared as one struct: (t, k) < (event_time + 1, '')
    holds exactly when t <= event_time (no text sorts below ''), and the largest such (t, k) is
    the latest time with the largest tie-break. A null t sorts above every time, so a candidate
    without a time never matches, and events without one are filtered out first. (Candidates
    are not filtered: the filter would be pushed into the scan and parse every page view's time.)
-#}
{% macro latest_at_or_before(events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns, candidate_columns) %}{{ return(adapter.dispatch('latest_at_or_before', 'line_capi')(events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns, candidate_columns)) }}{% endmacro %}
{% macro default__latest_at_or_before(events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns, candidate_columns) -%}
    select
        {%- for column in event_columns %}
        {{ events }}.{{ column }},
        {%- endfor %}
        {%- for column in candidate_columns %}
        {{ candidates }}.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (select * from {{ events }} where {{ event_time }} is not null) as {{ events }}
    asof inner join {{ candidates }}
        on {{ candidates }}.{{ partition_by }} = {{ events }}.{{ partition_by }}
        and {'t': {{ events }}.{{ event_time }} + 1, 'k': ''}
            > {'t': {{ candidates }}.{{ candidate_time }}, 'k': {{ candidates }}.{{ tie_break }}}
{%- endmacro %}

{#-
    A column of an export file, of type `data_type` (the engine's name; none when unknown), as the
    text a text export holds for the same value: instants as ISO 8601 in UTC with `Z` (a timestamp
    without time zone is UTC; the session time zone never matters), dates as YYYY-MM-DD, numbers
    and booleans as the engine writes them, lists and structs (items) as JSON, bytes as UTF-8.
-#}
{% macro karte_export_value_as_text(expr, data_type) %}{{ return(adapter.dispatch('karte_export_value_as_text', 'line_capi')(expr, data_type)) }}{% endmacro %}
{% macro default__karte_export_value_as_text(expr, data_type) -%}
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

{#- A query that reads `condition` over a row of null texts named `columns`, as a staging model does. -#}
{% macro sql_condition_probe(condition, columns) %}
    {%- set relation = [] -%}
    {%- for column in columns -%}
        {%- do relation.append('cast(null as ' ~ dbt.type_string() ~ ') as ' ~ column) -%}
    {%- endfor -%}
    {{ return("select 1 from (select " ~ (relation | join(', ')) ~ ") as source where (\n" ~ condition ~ "\n)") }}
{% endmacro %}

{#-
    Why `condition`, a SQL boolean expression over text columns named `columns`, would not run,
    as one line; none when it would. The check parses and binds it without running it and
    without raising, so a bad filter var is reported as the var's error.
-#}
{% macro sql_condition_problem(condition, columns) %}{{ return(adapter.dispatch('sql_condition_problem', 'line_capi')(condition, columns)) }}{% endmacro %}
{% macro default__sql_condition_problem(condition, columns) %}
    {%- set literal = "'" ~ sql_condition_probe(condition, columns) | replace("'", "''") ~ "'" -%}
    {%- set row = run_query("select json_serialize_sql(" ~ literal ~ "), json_serialize_plan(" ~ literal ~ ")").rows[0] -%}
    {%- set parsed, planned = fromjson(row[0]), fromjson(row[1]) -%}
    {%- if parsed.error -%}
        {%- set problem = parsed.error_message -%}
    {%- elif parsed.statements | length != 1 -%}
        {%- set problem = "one condition expected, not several statements" -%}
    {%- elif planned.error -%}
        {%- set problem = planned.error_message -%}
    {%- else -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(problem | replace('\n', ' ') | truncate(240, true, '...')) }}
{% endmacro %}

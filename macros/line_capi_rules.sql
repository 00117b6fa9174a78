{#-
    The LINE Conversion API's field rules (docs/line-capi.md), each written once. The models,
    the generic data tests of tests/dbt/generic/, the payload check is_valid_line_event and the
    var checks of macros/run_parameters.sql all read them from here.
    A pattern is an anchored regex in the syntax RE2 (DuckDB), Java (Spark, via spark_java_regex)
    and Python's re (the var checks, with re.fullmatch) read alike.
-#}

{#- Patterns -#}

{% macro line_deduplication_key_pattern() %}^[0-9a-zA-Z_-]{1,256}$ {%- endmacro %}
{% macro line_event_name_pattern() %}^[A-Za-z0-9_-]{1,20}$ {%- endmacro %}
{% macro line_click_id_pattern() %}^[a-zA-Z0-9_-]+$ {%- endmacro %}
{% macro line_uid_pattern() %}^U[0-9a-f]{32}$ {%- endmacro %}
{% macro uuid_pattern() %}^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ {%- endmacro %}
{% macro sha256_hex_pattern() %}^[0-9a-f]{64}$ {%- endmacro %}
{#- The yen sign: ¥, ￥, or the backslash that a Shift_JIS (CP932) file's yen sign becomes in UTF-8. -#}
{% macro yen_amount_pattern() %}^\s*[¥￥\\]?\s*[1-9][0-9]{0,2}(,[0-9]{3})+(\.[0-9]+)?\s*円?\s*$|^\s*[¥￥\\]\s*[0-9]+(\.[0-9]+)?\s*$|^\s*[0-9]+(\.[0-9]+)?\s*円\s*$ {%- endmacro %}
{#- An address: no space, and none of what an address holds only inside quotes or around it
    (<>()[]\,;:" and the zero-width spaces: <taro@example.com>, mailto:, a list's comma), nor a
    quote in its domain; as \x{..} escapes, which the SQL literals of both engines keep as they are. -#}
{% macro email_pattern() %}^[^@\s<>()\x{5B}\x{5D}\x{5C},;:\x{22}\x{200B}-\x{200D}\x{2060}]+@[^@\s<>()\x{5B}\x{5D}\x{5C},;:\x{22}\x{27}\x{200B}-\x{200D}\x{2060}]+\.[^@\s<>()\x{5B}\x{5D}\x{5C},;:\x{22}\x{27}\x{200B}-\x{200D}\x{2060}]+$ {%- endmacro %}
{% macro e164_pattern() %}^\+[0-9]{10,15}$ {%- endmacro %}
{#- A Japanese number in E.164: 9 digits after +81 (landlines, 0120, 0570) or 10 (mobiles, 050,
    0800). Longer is a number with an extension's digits (03-1234-5678 内線12) or a typo. -#}
{% macro japan_e164_pattern() %}^\+81[0-9]{9,10}$ {%- endmacro %}
{% macro web_url_pattern() %}^https?://.+ {%- endmacro %}
{% macro currency_code_pattern() %}^[A-Z]{3}$ {%- endmacro %}

{#- LINE's standard event names, spelt as LINE matches them (exactly); any other name is a custom
    conversion that must be set up in LINE Ads Manager. -#}
{% macro line_standard_event_names() %}
    {{ return(['Conversion', 'ViewItemDetail', 'AddToCart', 'InitiateCheckOut', 'Purchase',
        'GenerateLead', 'CompleteReservation', 'CompleteRegistration']) }}
{% endmacro %}

{#- IPv4 in dotted decimal, no leading zeros; unanchored, a part of ip_address_pattern(). -#}
{% macro ipv4_pattern() -%}
    {%- set octet = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])' -%}
    {{ octet }}(\.{{ octet }}){3}
{%- endmacro %}

{#-
    IPv6 in every RFC 4291 text form: full, `::`-compressed, and with an IPv4 tail
    (`::ffff:192.0.2.128`). Zone ids (`fe80::1%eth0`) are not addresses LINE takes.
    Built as one alternative per position of `::`, which RE2 (DuckDB) and Java (Spark) both run.
    Unanchored, a part of ip_address_pattern().
-#}
{% macro ipv6_pattern() -%}
    {%- set h = '[0-9a-fA-F]{1,4}' -%}
    {%- set v4 = ipv4_pattern() -%}
    {%- set alts = [ '(' ~ h ~ ':){7}' ~ h, '(' ~ h ~ ':){6}' ~ v4 ] -%}
    {#- groups = 8 for a pure address, 6 before an IPv4 tail; `::` stands for at least one group -#}
    {%- for groups, tail in [(8, ''), (6, v4)] -%}
        {%- for left in range(0, groups) -%}
            {%- for right in range(0, groups - left) -%}
                {%- set l = ('(' ~ h ~ ':){' ~ (left - 1) ~ '}' ~ h) if left > 0 else '' -%}
                {%- if tail == '' -%}
                    {%- set r = (h ~ '(:' ~ h ~ '){' ~ (right - 1) ~ '}') if right > 0 else '' -%}
                {%- else -%}
                    {%- set r = ('(' ~ h ~ ':){' ~ right ~ '}') if right > 0 else '' -%}
                {%- endif -%}
                {%- do alts.append(l ~ '::' ~ r ~ tail) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    ({{ alts | join('|') }})
{%- endmacro %}

{#- Limits -#}

{#- LINE accepts events from 90 days before to 24 hours after their arrival. -#}
{% macro line_max_event_age_seconds() %}{{ return(90 * 86400) }}{% endmacro %}
{% macro line_max_event_lead_seconds() %}{{ return(24 * 3600) }}{% endmacro %}
{% macro line_max_value() %}{{ return(2147483647) }}{% endmacro %}
{% macro line_max_item_ids() %}{{ return(100) }}{% endmacro %}
{% macro line_max_url_length() %}{{ return(2048) }}{% endmacro %}
{% macro line_max_title_length() %}{{ return(1024) }}{% endmacro %}

{#- Keys that match the pattern but that LINE reads as "no key", in any case. -#}
{% macro line_reserved_deduplication_keys() %}{{ return(['undefined', 'null']) }}{% endmacro %}

{#- Rules that are more than one pattern, as SQL conditions (null for null) -#}

{#- `expr` is a valid deduplication key: the pattern, and not a reserved word. -#}
{% macro is_line_deduplication_key_sql(expr) -%}
    ({{ regex_full_match(expr, line_deduplication_key_pattern()) }}
        and lower({{ expr }}) not in ('{{ line_reserved_deduplication_keys() | join("', '") }}'))
{%- endmacro %}

{#- `expr` is an IPv4 or an IPv6 address. -#}
{% macro is_ip_address_sql(expr) -%}
    ({{ regex_full_match(expr, '^' ~ ipv4_pattern() ~ '$') }}
        or {{ regex_full_match(expr, '^' ~ ipv6_pattern() ~ '$') }})
{%- endmacro %}

{#-
    The address in an `ip_address` as servers and proxies write it (rule 6), to be checked with
    is_ip_address_sql: the first of a list (`203.0.113.5, 10.0.0.1`, as X-Forwarded-For holds
    them: the client's comes first), without the brackets and port of `[2001:db8::1]:443` or the
    port of `203.0.113.5:51234`. A plain address (only digits and dots, or hex digits and colons)
    is taken as it is, without the extractions.
-#}
{% macro ip_address_candidate_sql(expr) -%}
    {%- set first = trim_ascii(regex_remove(expr, ',.*')) -%}
    case
        when {{ regex_full_match(expr, '^([0-9.]+|[0-9A-Fa-f:]+)$') }} then {{ expr }}
        else coalesce(
            {{ regex_extract(first, '^\\x{5B}([0-9A-Fa-f:.]+)\\x{5D}(:[0-9]{1,5})?$') }},
            {{ regex_extract(first, '^(' ~ ipv4_pattern() ~ '):[0-9]{1,5}$') }},
            {{ first }}
        )
    end
{%- endmacro %}

{#-
    The body of a generic data test: the non-null values of `column_name` in `model` for which
    `condition` (a SQL condition over the column) is not true.
-#}
{% macro values_breaking_rule(model, column_name, condition) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not coalesce({{ condition }}, false)
{% endmacro %}

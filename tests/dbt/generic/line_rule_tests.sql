{#-
    One generic test per LINE field rule of macros/line_capi_rules.sql: each fails on the non-null
    values of the column that break the rule.
-#}

{% test is_line_deduplication_key(model, column_name) %}
    {{ values_breaking_rule(model, column_name, is_line_deduplication_key_sql(column_name)) }}
{% endtest %}

{% test is_line_event_name(model, column_name) %}
    {{ values_breaking_rule(model, column_name, regex_full_match(column_name, line_event_name_pattern())) }}
{% endtest %}

{% test is_line_click_id(model, column_name) %}
    {{ values_breaking_rule(model, column_name, regex_full_match(column_name, line_click_id_pattern())) }}
{% endtest %}

{% test is_line_browser_id(model, column_name) %}
    {{ values_breaking_rule(model, column_name, regex_full_match(column_name, uuid_pattern())) }}
{% endtest %}

{% test is_line_uid(model, column_name) %}
    {{ values_breaking_rule(model, column_name, regex_full_match(column_name, line_uid_pattern())) }}
{% endtest %}

{#- A lowercase hex SHA-256 (64 of 0-9 a-f): user.email and user.phone. -#}
{% test is_sha256_hex(model, column_name) %}
    {{ values_breaking_rule(model, column_name, regex_full_match(column_name, sha256_hex_pattern())) }}
{% endtest %}

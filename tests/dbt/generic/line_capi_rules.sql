{#-
    Generic tests for the LINE field rules of macros/line_capi_rules.sql that line_capi_rejected's
    columns must follow: each fails on the non-null values of the column that break the rule. The
    fields of line_capi_payload are checked in the payload itself, by is_valid_line_event.
-#}

{% test is_line_deduplication_key(model, column_name) %}
    {{ values_breaking_rule(model, column_name, is_line_deduplication_key_sql(column_name)) }}
{% endtest %}

{% test is_line_event_name(model, column_name) %}
    {{ values_breaking_rule(model, column_name, regex_full_match(column_name, line_event_name_pattern())) }}
{% endtest %}

{#-
    Fails on each payload that LINE's validation would refuse (../shared/docs/line-capi-spec.md):
    not JSON, not starting with {"event":{, unknown or null members, a bad event field, no user
    identifier, or a user, web or custom field outside its pattern or limit.
-#}
{% test is_valid_line_event(model, column_name) %}
{{ return(adapter.dispatch('test_is_valid_line_event', 'line_capi')(model, column_name)) }}
{% endtest %}

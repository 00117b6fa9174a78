{#-
    Every reason a conversion can be rejected for, in the order they apply: the first that holds
    is a conversion's reason (int_conversions_windowed sets the first three, int_conversions_joined
    the others and picks the first). line_capi_coverage has a column rejected_<reason> for each.
    The seed line_capi_reject_reasons says what each means; the data test
    assert_reject_reasons_match_the_seed fails when the two disagree.
-#}
{% macro reject_reasons() %}
    {{ return([
        'missing_deduplication_key',
        'invalid_deduplication_key',
        'invalid_sync_date',
        'timestamp_out_of_range',
        'no_user_identifier',
        'missing_purchase_value',
    ]) }}
{% endmacro %}

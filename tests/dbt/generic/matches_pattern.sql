{#- Fails on each non-null value that does not match `pattern` (an anchored regex). -#}
{% test matches_pattern(model, column_name, pattern) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not {{ regex_full_match(column_name, pattern) }}
{% endtest %}

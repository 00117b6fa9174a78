{#- Fails on each non-null value that is not a lowercase hex SHA-256 (64 of 0-9 a-f). -#}
{% test is_sha256_hex(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
    and not {{ regex_full_match(column_name, sha256_hex_pattern()) }}
{% endtest %}

{#-
    Apache Spark bodies of the cross-database macros that the performance work (issue 4) added
    to macros/cross_db.sql. Kept apart from macros/cross_db_spark.sql so that the two can be
    edited independently; the same rules apply (same rows, same JSON as the DuckDB build).
-#}

{#- The text is already checked against a pattern without quotes or backslashes: quoting is enough. -#}
{% macro spark__json_plain_string(expr) %}concat('"', {{ expr }}, '"'){% endmacro %}

{#- Spark has no ASOF JOIN: the join on (partition_by, candidate_time <= event_time), then the latest per event. -#}
{% macro spark__latest_at_or_before(events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns, candidate_columns) -%}
    select
        {%- for column in event_columns + candidate_columns %}
        {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        select
            {%- for column in event_columns %}
            {{ events }}.{{ column }},
            {%- endfor %}
            {%- for column in candidate_columns %}
            {{ candidates }}.{{ column }},
            {%- endfor %}
            row_number() over (
                partition by
                    {%- for column in ([event_id] if event_id is string else event_id) %}
                    {{ events }}.{{ column }}{{ ',' if not loop.last }}
                    {%- endfor %}
                order by {{ candidates }}.{{ candidate_time }} desc, {{ candidates }}.{{ tie_break }} desc
            ) as latest_rank
        from {{ events }}
        inner join {{ candidates }}
            on {{ candidates }}.{{ partition_by }} = {{ events }}.{{ partition_by }}
            and {{ candidates }}.{{ candidate_time }} <= {{ events }}.{{ event_time }}
    ) as ranked
    where latest_rank = 1
{%- endmacro %}

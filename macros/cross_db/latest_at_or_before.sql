{#- The as-of lookup of rules 4 and 5: each conversion's latest candidate at or before it. -#}

{#-
    A select of, for each row of relation `events`, the `candidates` row with the same
    `partition_by` column and the latest `candidate_time` at or before `event_time`, a tie going
    to the largest `tie_break` (a non-null text column of `candidates`). Events with no such
    candidate, or a null time, are left out, like an inner join; a null candidate_time never
    matches. Times are integers (Unix seconds). `event_id` is a column, or a list of columns,
    unique and non-null in `events`. `event_columns` and `candidate_columns` are the columns
    selected from each side (distinct names).
-#}
{% macro latest_at_or_before(
    events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns,
    candidate_columns
) %}
    {{ return(adapter.dispatch('latest_at_or_before', 'line_capi')(
        events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns, candidate_columns
    )) }}
{% endmacro %}

{% macro default__latest_at_or_before(
    events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns,
    candidate_columns
) %}
    {{- not_ported('latest_at_or_before') -}}
{% endmacro %}

{#-
    One ASOF JOIN: one probe per event, no fan-out, no window (docs/bench.md). ASOF allows one
    inequality, so time and tie-break are compared as one struct: (t, k) < (event_time + 1, '')
    holds exactly when t <= event_time (no text sorts below ''), and the largest such (t, k) is
    the latest time with the largest tie-break. A null t sorts above every time, so a candidate
    without a time never matches, and events without one are filtered out first. Candidates are
    not filtered: the filter would be pushed into the scan and parse every page view's time.
-#}
{% macro duckdb__latest_at_or_before(
    events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns,
    candidate_columns
) -%}
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

{#- Spark has no ASOF JOIN: the join on (partition_by, candidate_time <= event_time), then the latest per event. -#}
{% macro spark__latest_at_or_before(
    events, event_id, event_time, candidates, candidate_time, tie_break, partition_by, event_columns,
    candidate_columns
) -%}
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

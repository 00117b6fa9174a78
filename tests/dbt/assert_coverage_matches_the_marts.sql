-- line_capi_coverage holds, for the last finished build (the invocation line_capi_build_info
-- names), one row per configured LINE event name with exactly the counts of line_capi_payload
-- and line_capi_rejected: every total, every reason, every identifier (of the payload's fields,
-- line_capi_payload_fields). Counted here one measure at a time, independently of the model's
-- single pass; returns each (event name, measure) whose counts differ, or whose row is missing
-- or repeated (measure `rows`).
{%- set columns = ['conversions_in_window', 'sendable', 'rejected'] %}
{%- for reason in reject_reasons() %}{% do columns.append('rejected_' ~ reason) %}{% endfor %}
{%- for identifier, condition in coverage_identifiers() %}{% do columns.append('with_' ~ identifier) %}{% endfor %}
with

coverage as (

    {{ coverage_of_the_last_build() }}

),

payload as (

    select * from {{ ref('line_capi_payload') }}

),

payload_fields as (

    select * from {{ ref('line_capi_payload_fields') }}

),

rejected as (

    select * from {{ ref('line_capi_rejected') }}

),

found as (

    select
        event_name,
        'rows' as measure,
        count(*) as counted
    from coverage
    group by event_name
    {%- for column in columns %}
        union all
        select
            event_name,
            {{ dbt.string_literal(column) }} as measure,
            {{ column }} as counted
        from coverage
    {%- endfor %}

),

expected as (

    select
        event_name,
        'rows' as measure,
        1 as counted
    from ({{ coverage_event_names_select() }}) as configured
    union all
    select
        event_name,
        'sendable' as measure,
        count(*) as counted
    from payload
    group by event_name
    union all
    select
        event_name,
        'rejected' as measure,
        count(*) as counted
    from rejected
    group by event_name
    union all
    select
        event_name,
        'conversions_in_window' as measure,
        count(*) as counted
    from (
        select event_name from payload
        union all
        select event_name from rejected
    ) as conversions
    group by event_name
    {%- for reason in reject_reasons() %}
        union all
        select
            event_name,
            'rejected_{{ reason }}' as measure,
            count(*) as counted
        from rejected
        where reason = {{ dbt.string_literal(reason) }}
        group by event_name
    {%- endfor %}
    {%- for identifier, condition in coverage_identifiers() %}
        union all
        select
            event_name,
            'with_{{ identifier }}' as measure,
            count(*) as counted
        from payload_fields
        where {{ condition }}
        group by event_name
    {%- endfor %}

)

select
    expected.counted as expected,
    found.counted as found,
    coalesce(expected.event_name, found.event_name) as event_name,
    coalesce(expected.measure, found.measure) as measure
from expected
full outer join found
    on found.event_name = expected.event_name
        and found.measure = expected.measure
where coalesce(expected.counted, 0) <> coalesce(found.counted, 0)

-- Warns (it never fails the build) for each configured conversion type of which this build's
-- window rejected at least 5 conversions and at least 90% of them all: the first hourly run of an
-- export whose order ids, times or identifiers the rules cannot read (order ids written as floats,
-- 202600001.0; a user master without an email column) says so at once, not three hours later
-- in the alert (LINE_CAPI_ALERT_REJECTED_SHARE and LINE_CAPI_ALERT_EMPTY_BUILDS,
-- docs/monitoring.md). Returns the LINE event name, how many were rejected of how many, and the
-- most frequent reason.
{{ config(severity='warn') }}
{%- set reasons = reject_reasons() %}
with

coverage as (

    {{ coverage_of_the_last_build() }}

),

most_frequent as (

    select
        *,
        greatest(
            {%- for reason in reasons %}
                rejected_{{ reason }}{{ ',' if not loop.last }}
            {%- endfor %}
        ) as most_for_one_reason
    from coverage

)

select
    event_name,
    rejected,
    conversions_in_window,
    -- the first of the reasons with the most rejections, in the order they are applied
    case
        {%- for reason in reasons %}
            when rejected_{{ reason }} = most_for_one_reason then '{{ reason }}'
        {%- endfor %}
    end as top_reason
from most_frequent
where rejected >= 5
    and rejected >= 0.9 * conversions_in_window

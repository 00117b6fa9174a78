-- Warns (it never fails the build) for each LINE event name that the previous build of the same
-- kind (a real export, or the sample) was configured for and this build is not: most often a
-- var karte_conversion_events written for a new conversion type alone ({signup: ...}), which
-- replaces the default pair (buy sent as Conversion) instead of adding to it, or a build run
-- without the site's vars. Those conversions are then neither sent nor rejected, with nothing
-- else to say so. Returns each event name left out.
-- The hourly job alerts on it at once (docs/monitoring.md).
{{ config(severity='warn') }}
with

coverage as (

    select * from {{ ref('line_capi_coverage') }}

),

this_build as (

    select
        coverage.event_name,
        coverage.built_at,
        coverage.is_sample
    from coverage
    inner join {{ ref('line_capi_build_info') }} as build
        on build.invocation_id = coverage.invocation_id

),

this_kind as (

    select
        min(built_at) as built_at,
        max(case when is_sample then 1 else 0 end) as is_sample
    from this_build

),

previous_build as (

    select max(coverage.built_at) as built_at
    from coverage
    inner join this_kind
        on
            this_kind.built_at > coverage.built_at
            and this_kind.is_sample = (case when coverage.is_sample then 1 else 0 end)

)

select previous_names.event_name
from coverage as previous_names
inner join previous_build
    on previous_build.built_at = previous_names.built_at
left join this_build
    on this_build.event_name = previous_names.event_name
where this_build.event_name is null

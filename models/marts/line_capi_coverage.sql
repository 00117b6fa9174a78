{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='append_new_columns',
    post_hook="{{ prune_coverage_history() }}",
) }}
-- How many conversions of this build carry which identifier, one row per LINE event name the
-- build is configured for (zeros when it had none), appended to the rows of earlier builds so
-- that a drop shows (a release that loses ldtag_cl takes with_click_id to zero). One pass over
-- int_conversions_joined, the table both marts are made from: a row without a reason is in
-- line_capi_payload, one with a reason in line_capi_rejected (the data test
-- assert_coverage_matches_the_marts recounts the marts). `dbt build --full-refresh` keeps the
-- history (full_refresh=false); the post-hook drops rows older than var coverage_retention_days,
-- and sample rows after a real build.
-- Built after line_capi_build_info, so every build it has rows of finished that table too:
-- depends_on: {{ ref('line_capi_build_info') }}
{%- set as_of = as_of_unix() %}
{%- do coverage_retention_days() %}

with

conversions as (

    select * from {{ ref('int_conversions_joined') }}

),

event_names as (

    {{ coverage_event_names_select() }}

),

counted as (

    select
        event_name,
        {%- for reason in line_capi_reject_reasons() %}
            count(case when reason = {{ dbt.string_literal(reason) }} then 1 end) as rejected_{{ reason }},
        {%- endfor %}
        {%- for identifier, condition in coverage_identifiers() %}
            count(case when reason is null and ({{ condition }}) then 1 end) as with_{{ identifier }},
        {%- endfor %}
        count(case when reason is null then 1 end) as sendable,
        count(reason) as rejected
    from conversions
    group by event_name

),

final as (

    select
        {{ dbt.string_literal(invocation_id) }} as invocation_id,
        event_names.event_name,
        {{ 'true' if is_bundled_sample() else 'false' }} as is_sample,
        cast(coalesce(counted.sendable, 0) + coalesce(counted.rejected, 0) as bigint) as conversions_in_window,
        cast(coalesce(counted.sendable, 0) as bigint) as sendable,
        cast(coalesce(counted.rejected, 0) as bigint) as rejected,
        {%- for reason in line_capi_reject_reasons() %}
            cast(coalesce(counted.rejected_{{ reason }}, 0) as bigint) as rejected_{{ reason }},
        {%- endfor %}
        {%- for identifier, condition in coverage_identifiers() %}
            cast(coalesce(counted.with_{{ identifier }}, 0) as bigint) as with_{{ identifier }},
        {%- endfor %}
        {{ unix_seconds_to_timestamp('cast(' ~ (run_started_at.timestamp() | int) ~ ' as bigint)') }} as built_at,
        {{ unix_seconds_to_timestamp('cast(' ~ as_of ~ ' as bigint)') }} as as_of
    from event_names
    left join counted
        on counted.event_name = event_names.event_name

)

select * from final

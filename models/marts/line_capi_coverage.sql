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
-- Late conversions: those of the export that no build could send, newer than the newest an
-- earlier build of a real export read, yet older than this build's window (an export that
-- stopped adding rows, then added its backlog after more than lookback_hours): counted, with the
-- oldest, for the alert and its catch-up.
-- Built after line_capi_build_info, so every build it has rows of finished that table too:
-- depends_on: {{ ref('line_capi_build_info') }}
{%- set as_of = as_of_unix() %}
{%- set window_start = as_of - lookback_hours() * 3600 %}
{#- a table an earlier version built has no export_newest_at yet: this build records the first -#}
{%- set counts_late = is_incremental() and not is_bundled_sample()
    and relation_has_column(this, 'export_newest_at') %}
{%- do coverage_retention_days() %}

with

conversions as (

    select * from {{ ref('int_conversions_joined') }}

),

event_names as (

    {{ coverage_event_names_select() }}

),

export_conversions as (

    -- rule 1's rows of the whole export, in this build's window or not
    select
        {{ line_event_name_sql('event_name') }} as event_name,
        {{ trim_ascii('transaction_id') }} as trimmed_key,
        synced_at_unix
    from {{ ref('stg_karte__conversions') }}
    where {{ is_conversion_event_sql('event_name') }}
        and synced_at_unix <= {{ as_of }}

),

newest as (

    select
        event_name,
        max(synced_at_unix) as newest_unix
    from export_conversions
    group by event_name

),

read_before as (

    -- the newest conversion time of each event name that an earlier build of a real export
    -- read (none on a first build, the first since the upgrade that added the column, or for a
    -- build of the sample, which counts nothing late)
    {%- if counts_late %}
        select
            event_name,
            max(export_newest_at) as newest_at
        from {{ this }}
        where not is_sample
            and invocation_id <> {{ dbt.string_literal(invocation_id) }}
        group by event_name
    {%- else %}
        select
            event_name,
            {{ unix_seconds_to_timestamp('cast(null as bigint)') }} as newest_at
        from event_names
        where false
    {%- endif %}

),

late as (

    select
        export_conversions.event_name,
        count(distinct export_conversions.trimmed_key) as late_conversions,
        min(export_conversions.synced_at_unix) as late_oldest_unix
    from export_conversions
    inner join read_before
        on read_before.event_name = export_conversions.event_name
    where {{ unix_seconds_to_timestamp('export_conversions.synced_at_unix') }} > read_before.newest_at
        and export_conversions.synced_at_unix <= {{ window_start }}
    group by export_conversions.event_name

),

counted as (

    select
        event_name,
        {%- for reason in reject_reasons() %}
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
        {%- for reason in reject_reasons() %}
            cast(coalesce(counted.rejected_{{ reason }}, 0) as bigint) as rejected_{{ reason }},
        {%- endfor %}
        {%- for identifier, condition in coverage_identifiers() %}
            cast(coalesce(counted.with_{{ identifier }}, 0) as bigint) as with_{{ identifier }},
        {%- endfor %}
        {{ unix_seconds_to_timestamp('cast(' ~ (run_started_at.timestamp() | int) ~ ' as bigint)') }} as built_at,
        {{ unix_seconds_to_timestamp('cast(' ~ as_of ~ ' as bigint)') }} as as_of,
        {{ unix_seconds_to_timestamp('newest.newest_unix') }} as export_newest_at,
        cast(coalesce(late.late_conversions, 0) as bigint) as late_conversions,
        {{ unix_seconds_to_timestamp('late.late_oldest_unix') }} as late_oldest_at
    from event_names
    left join counted
        on counted.event_name = event_names.event_name
    left join newest
        on newest.event_name = event_names.event_name
    left join late
        on late.event_name = event_names.event_name

)

select * from final

{{ config(materialized='table') }}
-- Rules 1-3: the conversions of this run, one row per conversion.
--   1. Rows of a conversion event (var karte_conversion_events, or karte_conversion_event) with
--      as_of - lookback_hours < sync_date <= as_of, each with the LINE event name of its type;
--      within one LINE event name, the rows of one valid deduplication key are one conversion:
--      the earliest (ties: smallest pv_id). The data filter applied before, in staging.
--   2. The key is the trimmed transaction_id; a missing or invalid key (a "no value" word such as
--      None, nan or a lone - among them) is never grouped: each such row is a conversion of its own,
--      rejected downstream.
--   3. The event time in integer Unix seconds, and whether LINE still accepts it (-90 days..+24 h).
-- Rows of a conversion event whose sync_date cannot be read are rejected (invalid_sync_date)
-- unless their LINE event name and key already are a conversion of this window; the rows of one
-- valid key are rejected once (the first by pv_id), a row without a valid key on its own.
{%- set as_of = as_of_unix() %}
{%- set window_start = as_of - lookback_hours() * 3600 %}

with

conversions as (

    select * from {{ ref('stg_karte__conversions') }}

),

keyed as (

    select
        *,
        {{ line_event_name_sql('event_name') }} as line_event_name,
        {{ trim_ascii('transaction_id') }} as trimmed_key
    from conversions
    where {{ is_conversion_event_sql('event_name') }}

),

classified as (

    select
        *,
        case
            when trimmed_key is null or trimmed_key = '' then 'missing_deduplication_key'
            -- a "no value" word (None, nan, \N, -...: the export's, not the site's) is no key: read as
            -- one, every conversion without an order number would be the first one's duplicate
            when not {{ is_line_deduplication_key_sql('trimmed_key') }}
                or {{ karte_missing_as_null('trimmed_key') }} is null then 'invalid_deduplication_key'
        end as key_problem
    from keyed

),

in_window as (

    select *
    from classified
    where synced_at_unix > {{ window_start }}
        and synced_at_unix <= {{ as_of }}

),

valid_keys_ranked as (

    select
        *,
        row_number() over (
            partition by line_event_name, trimmed_key
            order by synced_at_unix asc, pv_id asc nulls last
        ) as row_rank
    from in_window
    where key_problem is null

),

earliest_per_key as (

    select
        *,
        trimmed_key as deduplication_key,
        cast(null as {{ dbt.type_string() }}) as reason
    from valid_keys_ranked
    where row_rank = 1

),

invalid_key_rows as (

    select
        *,
        cast(null as {{ dbt.type_string() }}) as deduplication_key,
        key_problem as reason
    from in_window
    where key_problem is not null

),

unreadable_time_candidates as (

    select
        classified.*,
        -- the rows of one valid key are one conversion, rejected once: the first by pv_id
        row_number() over (
            partition by classified.line_event_name, classified.trimmed_key
            order by classified.pv_id asc nulls last, classified.sync_date asc nulls last
        ) as key_rank
    from classified
    left join earliest_per_key
        on earliest_per_key.line_event_name = classified.line_event_name
            and earliest_per_key.trimmed_key = classified.trimmed_key
    where classified.synced_at_unix is null
        and (
            classified.key_problem is not null
            or earliest_per_key.trimmed_key is null
        )

),

unreadable_time_rows as (

    select
        *,
        case when key_problem is null then trimmed_key end as deduplication_key,
        coalesce(key_problem, 'invalid_sync_date') as reason
    from unreadable_time_candidates
    where key_problem is not null or key_rank = 1

),

unioned as (

    {%- for rows in ['earliest_per_key', 'invalid_key_rows', 'unreadable_time_rows'] %}
        {{ 'union all' if not loop.first }}
        select
            line_event_name,
            deduplication_key,
            transaction_id,
            user_id,
            pv_id,
            sync_date,
            synced_at_unix,
            revenue,
            items,
            reason
        from {{ rows }}
    {%- endfor %}

),

final as (

    select
        line_event_name as event_name,
        deduplication_key,
        transaction_id,
        user_id,
        pv_id,
        sync_date,
        items,
        revenue,
        reason,
        (
            synced_at_unix is not null
            and synced_at_unix >= {{ as_of - line_max_event_age_seconds() }}
            and synced_at_unix <= {{ as_of + line_max_event_lead_seconds() }}
        ) as is_timestamp_accepted_by_line,
        synced_at_unix as event_timestamp
    from unioned

)

select * from final

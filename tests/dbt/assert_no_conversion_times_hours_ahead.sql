-- Stops the build on conversions stamped more than an hour after both the clock and as_of: times
-- written without their offset are read as UTC (karte_export_utc_offset unset), so Japan time (a
-- BigQuery DATETIME) reads 9 hours ahead, and each conversion would be sent 9 hours late, once
-- the window reaches it, or never. `sender run` stops earlier, on the freshness check (exit 11),
-- with the same advice.
-- The check runs once, while the test compiles, so that its error can say what to do: a failing
-- data test prints only its name and row count. Only when the test runs: `dbt compile` and
-- `dbt docs generate` compile it too, before (or without) any build.
-- A time more than 15 h ahead is no offset mistake (karte_far_future_unix) but a wrong value: it
-- does not stop the build; it is said once, as a warning.
{%- set clock = [run_started_at.timestamp() | int, as_of_unix()] | max %}
{%- set far = karte_far_future_unix() %}
{%- set ahead_query %}
    select
        synced_at_unix > {{ far }} as too_far,
        count(*) as conversions,
        max(synced_at_unix - {{ clock }}) / 3600.0 as max_hours_ahead,
        min(sync_date) as first_sync_date
    from {{ ref('stg_karte__conversions') }}
    where synced_at_unix > {{ clock + 3600 }}
    group by 1
{%- endset %}
{%- if execute and flags.WHICH in ('build', 'test', 'retry') %}
    {%- set ahead = namespace(count=0, hours=none, first=none) %}
    {%- for row in run_query(ahead_query).rows %}
        {%- if row[0] %}
            {%- do log("warning: KARTE export table conversions has " ~ row[1] ~ " sync_dates more"
                ~ " than 15 h after the clock (the first: " ~ row[3] ~ "): no offset written as UTC"
                ~ " reads so far ahead, so they are wrong values; those conversions wait outside the"
                ~ " window until their time comes", info=true) %}
        {%- else %}
            {%- set ahead.count = row[1] %}
            {%- set ahead.hours = row[2] %}
            {%- set ahead.first = row[3] %}
        {%- endif %}
    {%- endfor %}
    {%- if ahead.count > 0 %}
        {{ exceptions.raise_compiler_error(
            ahead.count ~ " conversions are stamped more than an hour after the clock, up to "
            ~ '%.1f' | format(ahead.hours) ~ " h (the first: " ~ ahead.first ~ "): times without an"
            ~ " offset are read as UTC. If the export writes Japan time without its offset, set"
            ~ " dbt var karte_export_utc_offset: '+09:00' (docs/configuration.md); else export"
            ~ " sync_date with its offset"
        ) }}
    {%- endif %}
{%- endif %}

-- nothing left to find: the query above found nothing
select 1 as conversions_ahead
where 1 = 0

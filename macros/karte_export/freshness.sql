{#-
    The loaded_at_query of the export's source freshness (models/staging/karte/_karte__sources.yml):
    the newest sync_date of `table_name`, parsed as staging parses it (so the bundled sample, whose
    times follow as_of, is fresh), as a UTC timestamp; null for a table without rows, the Unix
    epoch for one whose times all fail to parse. A bad threshold var fails the check here.
-#}
{% macro karte_export_loaded_at(table_name) %}
    {%- do karte_freshness_hours() -%}
    {%- set mapping = {} if karte_export_views_use_contract_names() else (karte_column_map().get(table_name) or {}) -%}
    {%- set column = mapping.get('sync_date') or 'sync_date' -%}
    {%- set text = 'cast(' ~ adapter.quote(column) ~ ' as ' ~ dbt.type_string() ~ ')' -%}
    {#- rows, none of whose times parse: the epoch, so that a changed format is stale, not empty;
        a time too far ahead to be an offset mistake is a wrong value, not the newest row -#}
    select {{ unix_seconds_to_timestamp(
        'coalesce(max(case when synced <= ' ~ karte_far_future_unix() ~ ' then synced end),'
        ~ ' case when count(*) > 0 then 0 end)'
    ) }}
    from (select {{ karte_sync_date_to_unix(text) }} as synced from {{ this }}) as parsed
{%- endmacro %}

{#-
    Unix seconds beyond which a sync_date is too far ahead of the clock (the later of the run's
    start and as_of) to be a time written without its offset: offsets run from -12:00 to +14:00,
    so such a time reads at most 14 hours ahead. A later one (a typo's year 2099) is a wrong value:
    freshness and the check for times ahead leave it out, so that one row cannot stop every run.
-#}
{% macro karte_far_future_unix() %}
    {{- return(([run_started_at.timestamp() | int, as_of_unix()] | max) + 15 * 3600) -}}
{% endmacro %}

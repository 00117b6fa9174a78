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
    {#- rows, none of whose times parse: the epoch, so that a changed format is stale, not empty -#}
    select {{ unix_seconds_to_timestamp(
        'coalesce(max(' ~ karte_sync_date_to_unix(text) ~ '), case when count(*) > 0 then 0 end)'
    ) }}
    from {{ this }}
{%- endmacro %}

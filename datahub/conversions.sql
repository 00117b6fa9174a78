-- conversions: the conversion events of the last 48 hours, one row per event, in the columns of
-- the input contract's `conversions` table. A KARTE Datahub job runs it every hour and exports
-- the result to Cloud Storage as conversions.csv (docs/karte-datahub.md).
--
-- WINDOW: 48 hours, twice the default lookback_hours (24), so that KARTE's ingestion delay (up
-- to an hour) and a few missed runs lose nothing; the pipeline keeps its own lookback and the
-- send ledger skips what was already sent. With a larger lookback_hours, raise the 48 (here and
-- in `converters` of the other three queries) to at least lookback_hours + 24, and the days of
-- TABLE_SUFFIX with it.
--
-- The conversion event is `buy`; for another one, replace 'buy' and '$.buy.' in all four queries.
--
-- What KARTE's documentation does not confirm, to check in your own Datahub before the first
-- run (docs/karte-datahub.md, "What to check"). [code]: seen in public code only; [inferred]:
-- follows from the documentation without being stated; [unknown]: not documented anywhere.
--   [code]     karte_event's columns event_name, user_id, visitor_id, session_id, sync_date (a
--              TIMESTAMP) and values (JSON text keyed by event name);
--   [inferred] the buy fields $.buy.transaction_id, $.buy.revenue and $.buy.items;
--   [unknown]  a page-view id: no column is documented, so each conversion is tied to the
--              latest view of the same browser (visitor_id) at or before it, and that view is
--              named as page_views.sql names it: visitor_id || '-' || microseconds of sync_date.
with

events as (

    select
        event_name,
        user_id,
        visitor_id,
        session_id,
        sync_date,
        values
    from {% karte_event_all %} as t
    -- WINDOW: karte_event is split by UTC day; these days cover the 48 hours below.
    where t.TABLE_SUFFIX >= format_date('%Y%m%d', date_sub(current_date(), interval 2 day))
        and t.event_name in ('buy', 'view')
        and t.sync_date >= timestamp_sub(current_timestamp(), interval 48 hour)

),

conversions as (

    select
        event_name,
        user_id,
        visitor_id,
        session_id,
        sync_date,
        json_value(values, '$.buy.transaction_id') as transaction_id,
        json_value(values, '$.buy.revenue') as revenue,
        json_query(values, '$.buy.items') as items
    from events
    where event_name = 'buy'
        and user_id is not null

),

page_views as (

    select
        visitor_id,
        sync_date,
        concat(visitor_id, '-', cast(unix_micros(sync_date) as string)) as pv_id
    from events
    where event_name = 'view'

),

conversions_with_page_view as (

    -- The page the conversion happened on: the browser's latest view at or before it, within
    -- an hour (the thanks page; its url, title, IP address and user agent become LINE's web.*).
    select
        conversions.*,
        page_views.pv_id,
        row_number() over (
            partition by conversions.visitor_id, conversions.sync_date, conversions.transaction_id
            order by page_views.sync_date desc
        ) as page_view_rank
    from conversions
    left join page_views
        on page_views.visitor_id = conversions.visitor_id
        and page_views.sync_date <= conversions.sync_date
        and page_views.sync_date >= timestamp_sub(conversions.sync_date, interval 1 hour)

),

final as (

    select
        event_name,
        user_id,
        transaction_id,
        -- Written as UTC text with Z, so the export's own rendering of timestamps does not matter.
        format_timestamp('%Y-%m-%dT%H:%M:%SZ', sync_date, 'UTC') as sync_date,
        revenue,
        items,
        session_id,
        pv_id,
        -- Not read by the pipeline: kept to check how KARTE keys a visitor who logs in.
        visitor_id
    from conversions_with_page_view
    where page_view_rank = 1

)

select * from final

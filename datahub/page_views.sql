-- page_views: the page views, LINE Tag cookies and request details of the users who converted in
-- the last 48 hours (the window of conversions.sql), over the last 33 days, in the columns of the
-- input contract's `page_views` table. A KARTE Datahub job runs it every hour and exports the
-- result to Cloud Storage as page_views.csv (docs/karte-datahub.md).
--
-- WINDOW: 33 days = conversions.sql's 48 hours + ad_contact_days (30) + a day of margin, so the
-- ad click of the oldest exported conversion is still here. With ad_contact_days N, use N + 3
-- days (both numbers marked WINDOW). Only converters' rows are exported: the pipeline reads no
-- others, and the file stays small.
--
-- KARTE stores a page's URL without its query string (uri.url) and the query apart (uri.query):
-- the url is rebuilt here, or the ad's click id (ldtag_cl) would be lost.
--
-- A page view of a browser counts for the user who converted on that browser, whether KARTE
-- keyed the view to the visitor (vis-...) or to the member: the click and the cookie belong to
-- the browser.
--
-- What KARTE's documentation does not confirm, to check in your own Datahub before the first
-- run (docs/karte-datahub.md, "What to check"). [code]: seen in public code only; [inferred]:
-- follows from the documentation without being stated; [unknown]: not documented anywhere.
--   [code]     karte_event's columns event_name, user_id, visitor_id, session_id, sync_date (a
--              TIMESTAMP) and values (JSON text keyed by event name);
--   [code]     $.view.access.title ($.view.access.uri.url and .uri.query are documented);
--   [unknown]  $.view.access.referrer.url, a full referrer URL (leave it null if absent);
--   [unknown]  which req belongs to a view: here the one of the same browser and session
--              nearest in time ($.req.ip_address and $.req."user-agent" are documented);
--   [unknown]  the event that carries the LINE Tag cookie: your site tag's own; here
--              `line_tag_cookie` with the field lt_cid;
--   [unknown]  a page-view id: none is documented, so a view is named visitor_id || '-' ||
--              microseconds of sync_date, as conversions.sql names it.
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
    -- WINDOW: karte_event is split by UTC day; these days cover the 33 days below.
    where t.TABLE_SUFFIX >= format_date('%Y%m%d', date_sub(current_date(), interval 33 day))
        and t.event_name in ('buy', 'view', 'req', 'line_tag_cookie')
        and t.sync_date >= timestamp_sub(current_timestamp(), interval 33 day)

),

converters as (

    select distinct
        user_id,
        visitor_id
    from events
    where event_name = 'buy'
        and user_id is not null
        and sync_date >= timestamp_sub(current_timestamp(), interval 48 hour)

),

page_views as (

    select
        user_id,
        visitor_id,
        session_id,
        sync_date,
        concat(visitor_id, '-', cast(unix_micros(sync_date) as string)) as pv_id,
        json_value(values, '$.view.access.uri.url') as url_without_query,
        json_value(values, '$.view.access.uri.query') as url_query,
        json_value(values, '$.view.access.referrer.url') as referrer,
        json_value(values, '$.view.access.title') as title
    from events
    where event_name = 'view'

),

page_views_with_url as (

    select
        user_id,
        visitor_id,
        session_id,
        sync_date,
        pv_id,
        -- uri.url || '?' || uri.query: the query string holds ldtag_cl.
        case
            when url_query is null or url_query = '' or strpos(url_without_query, '?') > 0
                then url_without_query
            else concat(url_without_query, '?', url_query)
        end as url,
        referrer,
        title,
        cast(null as string) as lt_cid
    from page_views

),

cookies as (

    -- Rows of their own: the pipeline takes the latest valid lt_cid at or before a conversion.
    select
        user_id,
        visitor_id,
        session_id,
        sync_date,
        concat(visitor_id, '-', cast(unix_micros(sync_date) as string), '-lt') as pv_id,
        cast(null as string) as url,
        cast(null as string) as referrer,
        cast(null as string) as title,
        json_value(values, '$.line_tag_cookie.lt_cid') as lt_cid
    from events
    where event_name = 'line_tag_cookie'

),

browsing as (

    select * from page_views_with_url
    union all
    select * from cookies

),

converters_browsing as (

    -- Keyed to the converting user: by user id, and by browser for views keyed to the visitor.
    select converters.user_id, browsing.* except (user_id)
    from browsing
    inner join converters
        on converters.user_id = browsing.user_id
    union distinct
    select converters.user_id, browsing.* except (user_id)
    from browsing
    inner join converters
        on converters.visitor_id = browsing.visitor_id

),

requests as (

    select
        visitor_id,
        session_id,
        sync_date,
        json_value(values, '$.req.ip_address') as ip_address,
        json_value(values, '$.req."user-agent"') as user_agent
    from events
    where event_name = 'req'
        and visitor_id in (select visitor_id from converters)

),

with_requests as (

    -- IP address and user agent are recorded on the req event, not on the view: take the req of
    -- the same browser and session nearest in time to the view.
    select
        converters_browsing.*,
        requests.ip_address,
        requests.user_agent,
        row_number() over (
            partition by converters_browsing.user_id, converters_browsing.pv_id
            order by abs(timestamp_diff(requests.sync_date, converters_browsing.sync_date, millisecond))
        ) as request_rank
    from converters_browsing
    left join requests
        on requests.visitor_id = converters_browsing.visitor_id
        and requests.session_id = converters_browsing.session_id
        and converters_browsing.url is not null

),

final as (

    select
        user_id,
        -- Written as UTC text with Z, so the export's own rendering of timestamps does not matter.
        format_timestamp('%Y-%m-%dT%H:%M:%SZ', sync_date, 'UTC') as sync_date,
        session_id,
        pv_id,
        url,
        referrer,
        title,
        ip_address,
        user_agent,
        lt_cid,
        -- Not read by the pipeline: kept to check how KARTE keys a visitor who logs in.
        visitor_id
    from with_requests
    where request_rank = 1

)

select * from final

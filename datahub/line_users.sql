-- line_users: the LINE user ids of the users who converted in the last 48 hours (the window of
-- conversions.sql), in the columns of the input contract's `line_users` table. A KARTE Datahub
-- job runs it every hour and exports the result to Cloud Storage as line_users.csv
-- (docs/karte-datahub.md). The pipeline sends a LINE user id only for a conversion that has
-- neither email nor phone.
--
-- Two setups, as for user_master.sql: in projects started before June 2021 the LINE logins are
-- plugin_line_identify events in karte_event (Setup A, below); newer projects keep them in the
-- link table "Personal Data (line identify)", which SQL cannot read: copy it into a data table
-- first and use Setup B.
--
-- WINDOW (Setup A): LINE logins of the last 33 days, as page_views.sql: a user last seen
-- earlier has none (docs/karte-datahub.md, "People seen in the last 33 days only").
--
-- What KARTE's documentation does not confirm, to check in your own Datahub before the first
-- run (docs/karte-datahub.md, "What to check"). [code]: seen in public code only; [inferred]:
-- follows from the documentation without being stated; [unknown]: not documented anywhere.
--   [inferred] whether your project still has these values in karte_event (Setup A) or only in
--              the link table (Setup B); $.plugin_line_identify.line_user_id is documented;
--   [inferred] the columns user_id and line_user_id of your copy of the link table (Setup B).
-- Only the user id of the row is used: a LINE id belongs to a person, not to a browser.
with

converters as (

    select distinct user_id
    from {% karte_event_all %} as t
    where t.TABLE_SUFFIX >= format_date('%Y%m%d', date_sub(current_date(), interval 2 day))
        and t.event_name = 'buy'
        and t.user_id is not null
        and t.sync_date >= timestamp_sub(current_timestamp(), interval 48 hour)

),

line_logins as (

    -- >>> Setup A: the plugin_line_identify events in karte_event >>>
    select
        user_id,
        json_value(values, '$.plugin_line_identify.line_user_id') as line_user_id,
        sync_date
    from {% karte_event_all %} as t
    -- WINDOW: karte_event is split by UTC day; these days cover the 33 days below.
    where t.TABLE_SUFFIX >= format_date('%Y%m%d', date_sub(current_date(), interval 33 day))
        and t.event_name = 'plugin_line_identify'
        and t.sync_date >= timestamp_sub(current_timestamp(), interval 33 day)
    -- <<< Setup A <<<
    -- Setup B: put these lines in place of Setup A, with your copy of "Personal Data (line
    -- identify)" (its dataset is shown on the table's page in Datahub):
    -- |    select user_id, line_user_id, cast(null as timestamp) as sync_date
    -- |    from `prd-karte-per-client.karte_client_YOUR_API_KEY.line_personal_data`

),

final as (

    select
        user_id,
        line_user_id,
        -- Written as UTC text with Z, so the export's own rendering of timestamps does not matter.
        format_timestamp('%Y-%m-%dT%H:%M:%SZ', sync_date, 'UTC') as sync_date
    from line_logins
    where user_id in (select user_id from converters)
        and line_user_id is not null
        and line_user_id != ''

)

select * from final

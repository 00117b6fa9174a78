-- user_master: the email and phone of the users who converted in the last 48 hours (the window
-- of conversions.sql), one row per user, in the columns of the input contract's `user_master`
-- table. A KARTE Datahub job runs it every hour and exports the result to Cloud Storage as
-- user_master.csv (docs/karte-datahub.md). The pipeline normalises and hashes both; the file
-- holds them in clear text, like any user master: keep the bucket private and short-lived.
--
-- Two setups: in projects started before June 2021 the identify events keep their values in
-- karte_event (Setup A, below); newer projects keep them in the link table "Personal Data
-- (identify)", which SQL cannot read: copy it into a data table first (KARTE documents such a
-- job, replace mode, daily) and use Setup B.
--
-- WINDOW (Setup A): identify events of the last 33 days, as page_views.sql: a user last seen
-- earlier has none (docs/karte-datahub.md, "People seen in the last 33 days only").
--
-- What KARTE's documentation does not confirm, to check in your own Datahub before the first
-- run (docs/karte-datahub.md, "What to check"). [code]: seen in public code only; [inferred]:
-- follows from the documentation without being stated; [unknown]: not documented anywhere.
--   [inferred] the identify fields $.identify.email and $.identify.phone (your user tag may
--              use other names);
--   [inferred] whether your project still has these values in karte_event (Setup A) or only in
--              the link table (Setup B; the copy's columns user_id, email, phone are those
--              KARTE's own templates read).
-- Only the user id of the row is used: an email belongs to a person, not to a browser.
with

converters as (

    select distinct user_id
    from {% karte_event_all %} as t
    where t.TABLE_SUFFIX >= format_date('%Y%m%d', date_sub(current_date(), interval 2 day))
        and t.event_name = 'buy'
        and t.user_id is not null
        and t.sync_date >= timestamp_sub(current_timestamp(), interval 48 hour)

),

personal_data as (

    -- >>> Setup A: the identify events in karte_event >>>
    select
        user_id,
        json_value(values, '$.identify.email') as email,
        json_value(values, '$.identify.phone') as phone,
        sync_date
    from {% karte_event_all %} as t
    -- WINDOW: karte_event is split by UTC day; these days cover the 33 days below.
    where t.TABLE_SUFFIX >= format_date('%Y%m%d', date_sub(current_date(), interval 33 day))
        and t.event_name = 'identify'
        and t.sync_date >= timestamp_sub(current_timestamp(), interval 33 day)
    -- <<< Setup A <<<
    -- Setup B: put these lines in place of Setup A, with your copy of "Personal Data
    -- (identify)" (its dataset is shown on the table's page in Datahub):
    -- |    select user_id, email, phone, cast(null as timestamp) as sync_date
    -- |    from `prd-karte-per-client.karte_client_YOUR_API_KEY.personal_data`

),

converters_personal_data as (

    select
        user_id,
        nullif(email, '') as email,
        nullif(phone, '') as phone,
        sync_date
    from personal_data
    where user_id in (select user_id from converters)

),

latest as (

    -- The latest email and the latest phone of each user (an identify may carry only one).
    select
        user_id,
        first_value(email ignore nulls) over (
            partition by user_id
            order by sync_date desc
            rows between unbounded preceding and unbounded following
        ) as email,
        first_value(phone ignore nulls) over (
            partition by user_id
            order by sync_date desc
            rows between unbounded preceding and unbounded following
        ) as phone
    from converters_personal_data

),

final as (

    -- One row per user.
    select distinct
        user_id,
        email,
        phone
    from latest

)

select * from final

{{ config(materialized='table') }}
-- Every conversion of the run with all it will carry, and why it cannot be sent if it cannot.
-- The two marts read this one table, so the joins run once. A conversion is the pair
-- (event_name, deduplication_key): one key may be a conversion of several types.
--   Rule 10 (second half): line_uid only with var send_line_user_id, and only without email and phone.
--   Reasons, first that applies: missing_deduplication_key, invalid_deduplication_key,
--   invalid_sync_date, timestamp_out_of_range, no_user_identifier, missing_purchase_value (LINE
--   refuses a Purchase without custom.value: rule 11 leaves the value out when revenue is not a
--   number from 0 to 2147483647).
with

conversions as (

    select * from {{ ref('int_conversions_windowed') }}

),

click_ids as (

    select * from {{ ref('int_click_ids_attributed') }}

),

browser_ids as (

    select * from {{ ref('int_browser_ids_attributed') }}

),

web as (

    select * from {{ ref('int_conversion_page_views') }}

),

users as (

    select * from {{ ref('int_users_hashed') }}

),

line_uids as (

    select * from {{ ref('int_line_uids_latest') }}

),

custom as (

    select * from {{ ref('int_conversion_values') }}

),

joined as (

    select
        conversions.event_name,
        conversions.deduplication_key,
        conversions.transaction_id,
        conversions.user_id,
        conversions.pv_id,
        click_ids.click_id,
        browser_ids.browser_id,
        users.email_sha256,
        users.phone_sha256,
        {% if send_line_user_id() %}
            case
                when users.email_sha256 is null and users.phone_sha256 is null then line_uids.line_uid
            end as line_uid,
        {% else %}
            cast(null as {{ dbt.type_string() }}) as line_uid,
        {% endif %}
        web.web_url,
        web.web_referrer,
        web.web_title,
        web.web_ip_address,
        web.web_user_agent,
        web.seconds_after_page_view,
        custom.custom_currency,
        custom.custom_item_ids_json,
        custom.custom_value,
        custom.custom_quantity,
        conversions.reason as key_or_time_problem,
        conversions.is_timestamp_accepted_by_line,
        conversions.sync_date,
        conversions.event_timestamp
    from conversions
    left join click_ids
        on click_ids.event_name = conversions.event_name
            and click_ids.deduplication_key = conversions.deduplication_key
    left join browser_ids
        on browser_ids.event_name = conversions.event_name
            and browser_ids.deduplication_key = conversions.deduplication_key
    left join web
        on web.event_name = conversions.event_name
            and web.deduplication_key = conversions.deduplication_key
    left join users
        on users.user_id = conversions.user_id
            and conversions.deduplication_key is not null
    -- line_uids is read only with var send_line_user_id; sqlfluff also lints the other branch
    left join line_uids  -- noqa: ST11
        on line_uids.user_id = conversions.user_id
            and conversions.deduplication_key is not null
    left join custom
        on custom.event_name = conversions.event_name
            and custom.deduplication_key = conversions.deduplication_key

),

final as (

    select
        *,
        case
            when key_or_time_problem is not null then key_or_time_problem
            when not is_timestamp_accepted_by_line then 'timestamp_out_of_range'
            when click_id is null and browser_id is null and email_sha256 is null
                and phone_sha256 is null and line_uid is null then 'no_user_identifier'
            when event_name = 'Purchase' and custom_value is null then 'missing_purchase_value'
        end as reason
    from joined

)

select * from final

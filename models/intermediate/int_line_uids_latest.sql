-- Rule 10 (first half): each user's latest LINE user id that matches ^U[0-9a-f]{32}$, whatever its
-- sync_date; ties go to the largest line_user_id. Whether it is sent is decided in
-- int_conversions_joined (only without email and phone, and only with var send_line_user_id).
with

line_users as (

    select * from {{ ref('stg_karte__line_users') }}
    where user_id is not null

),

valid_ids as (

    select *
    from line_users
    where {{ regex_full_match('line_user_id', line_uid_pattern()) }}

),

ranked as (

    select
        user_id,
        line_user_id,
        row_number() over (
            partition by user_id
            order by synced_at_unix desc nulls last, line_user_id desc
        ) as recency_rank
    from valid_ids

),

final as (

    select
        user_id,
        line_user_id as line_uid
    from ranked
    where recency_rank = 1

)

select * from final

-- Rule 11: the custom object.
--   value: revenue when it is a number from 0 to 2147483647, sent with currency (var currency);
--          out of range or not a number, both are left out. A revenue of 0 is sent. A price
--          written with thousands separators and a yen sign (¥1,980, 1,980円) is that number, in
--          full-width digits too (１，９８０円), and with the backslash a Shift_JIS file's yen
--          sign becomes in UTF-8 (\1,980).
--   item_ids: the distinct item_id of items, in order, at most 100.
--   quantity: the sum of all items' quantities (an absent one counts 1); absent without items,
--             and left out unless a whole number from 0 to 2147483647.
with

conversions as (

    select
        event_name,
        deduplication_key,
        {{ halfwidth_ascii('revenue') }} as revenue,
        items
    from {{ ref('int_conversions_windowed') }}
    where deduplication_key is not null

),

parsed as (

    select
        event_name,
        deduplication_key,
        case
            when {{ to_number_or_null('revenue') }} is not null then {{ to_number_or_null('revenue') }}
            -- a price as a shop writes it: 1,980 / ¥1,980 / 1,980円 (commas only between thousands)
            when {{ regex_full_match('revenue', yen_amount_pattern()) }}
                then {{ to_number_or_null(regex_remove('revenue', '[^0-9.]')) }}
        end as revenue_amount,
        {{ parse_items('items') }} as item_list
    from conversions

),

measured as (

    select
        event_name,
        deduplication_key,
        revenue_amount,
        -- sqlfluff's DuckDB dialect cannot parse the two-argument lambda of this macro's body
        {{ items_distinct_ids('item_list', line_max_item_ids()) }} as item_ids,  -- noqa: PRS
        case
            when {{ array_length('item_list') }} > 0 then {{ items_total_quantity('item_list') }}
        end as total_quantity
    from parsed

),

final as (

    select
        event_name,
        deduplication_key,
        case
            when {{ array_length('item_ids') }} > 0 then {{ json_string_array('item_ids') }}
        end as custom_item_ids_json,
        case
            when revenue_amount between 0 and {{ line_max_value() }} then revenue_amount
        end as custom_value,
        case
            when revenue_amount between 0 and {{ line_max_value() }} then '{{ currency() }}'
        end as custom_currency,
        case
            when
                total_quantity between 0 and {{ line_max_value() }}
                and total_quantity = floor(total_quantity)
                then cast(total_quantity as {{ dbt.type_bigint() }})
        end as custom_quantity
    from measured

)

select * from final

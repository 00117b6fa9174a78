-- The rejection reasons are listed twice: the seed line_capi_reject_reasons says what each means,
-- the macro line_capi_reject_reasons() gives line_capi_coverage a column per reason. Returns each
-- reason that only one of them has.
with

seed as (

    select reason from {{ ref('line_capi_reject_reasons') }}

),

macro as (

    {%- for reason in line_capi_reject_reasons() %}
        {{ 'union all' if not loop.first }}
        select {{ dbt.string_literal(reason) }} as reason
    {%- endfor %}

)

select
    coalesce(seed.reason, macro.reason) as reason,
    case when seed.reason is null then 'not in the seed' else 'not in the macro line_capi_reject_reasons' end as problem
from seed
full outer join macro
    on macro.reason = seed.reason
where seed.reason is null or macro.reason is null

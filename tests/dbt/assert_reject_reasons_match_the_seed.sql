-- The rejection reasons are listed in the seed line_capi_reject_reasons (what each means) and in
-- the macro reject_reasons() (their order, and line_capi_coverage's column per reason). Returns
-- each reason that only one of them has. (The models set them, the docs describe them:
-- docs/development.md, "Making a change", lists every place.)
with

seed as (

    select reason from {{ ref('line_capi_reject_reasons') }}

),

macro as (

    {%- for reason in reject_reasons() %}
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

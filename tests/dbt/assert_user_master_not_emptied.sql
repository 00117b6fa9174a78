-- Stops the build, before the models that join the user master (the payload is never built),
-- when user_master has no row while the last finished build read some: an export that came up
-- empty (a copy that failed, a query that broke, a file of only its header row) sends every
-- conversion without its email and phone hashes, for good once LINE has counted it. The events
-- wait instead, and the first build with the users again sends them (within lookback_hours).
-- A site that stops exporting its users on purpose builds once with this test left out
-- (`dbt build --exclude assert_user_master_not_emptied`): that build records the empty user
-- master as the last build's. line_users is not checked: a site without LINE Login has none.
-- The check runs once, while the test compiles, so that its error can say what to do (a failing
-- data test prints only its name and row count); only when the test runs, as
-- assert_no_header_rows_among_the_export_rows does. The user master is read only when the last
-- build read rows, and then only up to its first row.
{%- if execute and flags.WHICH in ('build', 'test', 'retry') %}
    {%- set built = adapter.get_relation(
        database=target.database, schema=target.schema, identifier='line_capi_build_info') %}
    {%- set columns = adapter.get_columns_in_relation(built) | map(attribute='name') | map('lower') | list
        if built is not none else [] %}
    {%- if 'user_master_rows' in columns %}
        {%- set before = run_query("select max(user_master_rows) from " ~ built).rows[0][0] %}
        {%- if before is not none and before > 0 %}
            {%- set now = run_query("select count(*) from (select 1 from "
                ~ source('karte', 'user_master') ~ " limit 1) as first_row").rows[0][0] %}
            {%- if now == 0 %}
                {{ exceptions.raise_compiler_error(
                    "KARTE export table user_master has no row, and the last build read " ~ before
                    ~ ": an export that came up empty (a copy that failed, a query that broke) would send every"
                    ~ " conversion without its email and phone; nothing is built or sent until it has its rows"
                    ~ " again. A site that no longer exports its users: build once with"
                    ~ " --exclude assert_user_master_not_emptied (sender run -- --exclude ...)"
                ) }}
            {%- endif %}
        {%- endif %}
    {%- endif %}
{%- endif %}

-- nothing left to find: the query above found nothing (the source, named, runs this test first)
select 1 as emptied
from {{ source('karte', 'user_master') }}
where 1 = 0

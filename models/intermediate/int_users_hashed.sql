-- Rules 7-9: each user's email and phone as LINE's SHA-256 hashes. Plaintext never leaves this
-- view (it is read from the export file, hashed here, and only the hashes reach a table).
--   7. email: trim, full-width ASCII to half-width, trimmed again of every space JavaScript's
--      trim() removes (no-break space, byte order mark, ...: LINE's tag trims so), lowercase;
--      must look like an address (nothing it holds only inside quotes or around it: <...>,
--      mailto:, a list's comma); then SHA-256 lowercase hex.
--   8. phone: full-width to half-width; a number written as a float (819012345678.0, as pandas
--      writes an integer column with empty cells) loses its .0; digits and a leading +; an
--      international call prefix (00, 010) is the +; 0... and 81... become +81..., a 0 right
--      after +81 is dropped (+81 (0)90...), and so is a (0) after any other country code
--      (+44 (0)20...); must be + and 10-15 digits, 9 or 10 after +81 (an extension's digits make
--      no number); SHA-256 of it.
--   9. A value that already is 64 hex characters, once trimmed as rule 7 trims (a no-break or
--      ideographic space too, as LINE's tag does), is a hash: lowercased, never hashed again.
--      With var pii_prehashed, only such values are kept.
-- A user with several master rows gets the largest hash of each field (deterministic).
-- Only the users with a conversion in the window are read: no one else's data is hashed.
with

converting_users as (

    select user_id from {{ ref('int_conversions_windowed') }}

),

-- distinct: a master row repeated as it is is normalised once (the result is the same). It also
-- keeps DuckDB's planner from copying the staging view's expressions into every step below,
-- each of which names its input several times: planning this view took 1.5 s of every build.
users as (

    select distinct
        user_id,
        email,
        phone
    from {{ ref('stg_karte__user_master') }}
    where user_id is not null
        and user_id in (select converting_users.user_id from converting_users)

),

trimmed as (

    select
        user_id,
        {{ trim_ascii('email') }} as email_trimmed,
        {{ trim_ascii('phone') }} as phone_trimmed
    from users

),

normalized as (

    select
        user_id,
        lower({{ trim_unicode_space(halfwidth_ascii('email_trimmed')) }}) as email_normalized,
        {{ trim_unicode_space(halfwidth_ascii('phone_trimmed')) }} as phone_halfwidth
    from trimmed

),

-- rule 9, on the values as trimmed above: "\u3000<64 hex>" is a hash, as LINE's tag reads it
prehashed as (

    select
        *,
        case
            when {{ regex_full_match('email_normalized', sha256_hex_pattern()) }} then email_normalized
        end as email_prehashed,
        case
            when {{ regex_full_match('lower(phone_halfwidth)', sha256_hex_pattern()) }} then lower(phone_halfwidth)
        end as phone_prehashed
    from normalized

),

-- a trunk 0 in brackets after a country code (+44 (0)20 7946 0958, 010-44-(0)20...) is not
-- dialled from abroad: no part of the number (Italy's 0 is, and is written without brackets)
phone_written as (

    select
        *,
        case
            when phone_halfwidth like '+%' or phone_halfwidth like '00%' or phone_halfwidth like '010%'
                then replace(phone_halfwidth, '(0)', '')
            else phone_halfwidth
        end as phone_without_trunk
    from prehashed

),

phone_parts as (

    select
        *,
        phone_halfwidth like '+%' as has_plus,
        {{ regex_remove(
            "case when " ~ regex_full_match('phone_without_trunk', '[+]?[0-9]+[.]0+')
            ~ " then " ~ regex_remove('phone_without_trunk', '[.]0+$') ~ " else phone_without_trunk end",
            '[^0-9]') }} as phone_digits
    from phone_written

),

phone_international as (

    -- the digits after the country code's +, when written with it: after a +, or after an
    -- international call prefix (00 in most countries, 010 from Japan: 0081 90..., 010-81-90...;
    -- no Japanese number starts with either)
    select
        *,
        case
            when has_plus then phone_digits
            when phone_digits like '010%' then substr(phone_digits, 4)
            when phone_digits like '00%' then substr(phone_digits, 3)
        end as international_digits
    from phone_parts

),

phone_e164 as (

    select
        *,
        case
            when international_digits like '810%' then '+81' || substr(international_digits, 4)
            when international_digits is not null then '+' || international_digits
            when phone_digits like '810%' then '+81' || substr(phone_digits, 4)
            when phone_digits like '81%' then '+' || phone_digits
            when phone_digits like '0%' then '+81' || substr(phone_digits, 2)
        end as phone_candidate
    from phone_international

),

hashed as (

    select
        user_id,
        {% if pii_prehashed() %}
            email_prehashed as email_sha256,
            phone_prehashed as phone_sha256
        {% else %}
            coalesce(
                email_prehashed,
                case
                    when {{ regex_full_match('email_normalized', email_pattern()) }}
                        then {{ sha256_hex('email_normalized') }}
                end
            ) as email_sha256,
            coalesce(
                phone_prehashed,
                case
                    when {{ regex_full_match('phone_candidate', e164_pattern()) }}
                        and (
                            phone_candidate not like '+81%'
                            or {{ regex_full_match('phone_candidate', japan_e164_pattern()) }}
                        )
                        then {{ sha256_hex('phone_candidate') }}
                end
            ) as phone_sha256
        {% endif %}
    from phone_e164

),

final as (

    select
        user_id,
        max(email_sha256) as email_sha256,
        max(phone_sha256) as phone_sha256
    from hashed
    group by user_id

)

select * from final

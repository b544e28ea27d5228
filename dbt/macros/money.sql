{#- Money arithmetic: exact decimals, never floats. Each macro has unit tests through the models using it. -#}

{#- What one call costs, exactly, as halton_meter.pricing._cost computes it: each (tokens, rate per million)
    pair, times the region multiplier (NULL: none), plus fee_count fees at fee_kusd USD per 1,000 (NULL: none).
    Nothing is divided: the sum is kept in millionths of a dollar and scaled by 10^-6 at the end, in
    Decimal256 (an exact product of any UInt64 token count and Decimal(18, 9) rates), so no intermediate scale
    truncates; round it once with to_money. -#}
{% macro exact_call_cost(tokens, multiplier, fee_count, fee_kusd) -%}
    (
        (
            ({% for count, rate in tokens %}toDecimal256(ifNull({{ count }}, 0), 0) * toDecimal256(ifNull({{ rate }}, 0), 9){% if not loop.last %} + {% endif %}{% endfor %})
            * toDecimal256(ifNull({{ multiplier }}, 1), 9)
            + toDecimal256({{ fee_count }}, 0) * toDecimal256(ifNull({{ fee_kusd }}, 0), 9) * toDecimal256(1000, 0)
        ) * toDecimal256('0.000001', 6)
    )
{%- endmacro %}

{#- An exact amount of one call as money: Decimal(18, 9), rounded half away from zero to the nano-dollar.
    A call's cost is bounded (ingestion keeps its tokens and cost inside raw.requests' columns); sums are not:
    they are money totals. -#}
{% macro to_money(expression) -%}
    toDecimal64(round({{ expression }}, 9), 9)
{%- endmacro %}

{#- Money summed over calls, and what is computed from such sums: Decimal(38, 9), rounded half away from zero
    to the nano-dollar. Ingestion lets each call cost up to 999,999,999.999999999 USD, so a sum in
    Decimal(18, 9) overflowed (and failed the whole dbt build, every workspace's marts) at ten such calls;
    this one needs some 10^20 of them. -#}
{% macro to_money_total(expression) -%}
    toDecimal128(round({{ expression }}, 9), 9)
{%- endmacro %}

{#- A sum of money (a money total) that is 0, not NULL, over no rows. -#}
{% macro sum_money(expression) -%}
    toDecimal128(sum(ifNull({{ expression }}, toDecimal64(0, 9))), 9)
{%- endmacro %}

{#- Zero as a money total, for what has no rows. -#}
{% macro zero_money() -%}
    toDecimal128(0, 9)
{%- endmacro %}

{#- numerator / denominator * 100, rounded half away from zero to 4 decimals; NULL when the denominator is
    NULL or zero. The thresholds below apply to this rounded figure, the one the dashboard shows.
    Decimal(38, 4): a month's logged total against a one-cent bill is a percentage with 15 digits and more. -#}
{% macro percent_of(numerator, denominator) -%}
    if(
        ifNull({{ denominator }}, toDecimal64(0, 9)) = 0,
        NULL,
        toDecimal128(round(divideDecimal(toDecimal128({{ numerator }}, 9) * 100, toDecimal128({{ denominator }}, 9), 12), 4), 4)
    )
{%- endmacro %}

{#- A share between 0 and 1 of two counts or amounts, 6 decimals (NULL over zero). -#}
{% macro share_of(part, whole) -%}
    if(
        {{ whole }} = 0,
        NULL,
        toDecimal64(round(divideDecimal(toDecimal128({{ part }}, 9), toDecimal128({{ whole }}, 9), 12), 6), 6)
    )
{%- endmacro %}

{#- Reconciliation colours: sage under 0.5%, amber from 0.5% to 2% inclusive, red above 2%; `unbilled` when
    there is no billed figure to compare with. A zero bill is sage only when nothing was logged either. -#}
{% macro variance_status(variance_usd, billed_usd, variance_pct) -%}
    multiIf(
        {{ billed_usd }} is null, 'unbilled',
        {{ variance_usd }} = 0, 'sage',
        {{ billed_usd }} = 0, 'red',
        abs({{ variance_pct }}) < toDecimal64('0.5', 4), 'sage',
        abs({{ variance_pct }}) <= toDecimal64('2', 4), 'amber',
        'red'
    )
{%- endmacro %}

{#- Money arithmetic: exact decimals, never floats. Each macro has unit tests through the models using it. -#}

{#- Cost of `tokens` at `price` USD per million tokens, exactly (Decimal128 with 18 decimal places). -#}
{% macro mtok_cost(tokens, price) -%}
    (toDecimal128(ifNull({{ tokens }}, 0), 0) * toDecimal128({{ price }}, 18) / 1000000)
{%- endmacro %}

{#- An exact amount as money: Decimal(18, 9), rounded half away from zero to the nano-dollar. -#}
{% macro to_money(expression) -%}
    toDecimal64(round({{ expression }}, 9), 9)
{%- endmacro %}

{#- A sum of money that is 0, not NULL, over no rows. -#}
{% macro sum_money(expression) -%}
    toDecimal64(sum(ifNull({{ expression }}, toDecimal64(0, 9))), 9)
{%- endmacro %}

{#- numerator / denominator * 100, rounded half away from zero to 4 decimals; NULL when the denominator is
    NULL or zero. The thresholds below apply to this rounded figure, the one the dashboard shows. -#}
{% macro percent_of(numerator, denominator) -%}
    if(
        ifNull({{ denominator }}, toDecimal64(0, 9)) = 0,
        NULL,
        toDecimal64(round(divideDecimal(toDecimal128({{ numerator }}, 9) * 100, toDecimal128({{ denominator }}, 9), 12), 4), 4)
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

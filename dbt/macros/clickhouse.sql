{#- ClickHouse-specific SQL lives here, so models read as plain SQL. -#}

{#- Database names: every Halton database carries the same prefix (empty in production). Models without a
    custom schema go to the target schema, which the generated profile sets to <prefix>marts. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ var('database_prefix', '') }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

{#- Read a ReplacingMergeTree table with its duplicates collapsed at query time: merges are never trusted. -#}
{% macro dedupe() -%}
    FINAL
{%- endmacro %}

{#- The newest finished snapshot of a control-plane table (1970 when there is none yet). -#}
{% macro latest_snapshot_at(table_name) -%}
    (select max(snapshot_at) from {{ source('control_plane', 'snapshots') }} {{ dedupe() }} where source = '{{ table_name }}')
{%- endmacro %}

{#- A stable 64-bit key from non-null expressions. -#}
{% macro surrogate_key(expressions) -%}
    cityHash64({{ expressions | join(', ') }})
{%- endmacro %}

{#- The day treated as today: var('as_of') when set (tests, backfills), else today in UTC. -#}
{% macro as_of_date() -%}
    {%- if var('as_of', '') -%}
        toDate('{{ var("as_of") }}')
    {%- else -%}
        toDate(now('UTC'))
    {%- endif -%}
{%- endmacro %}

{% macro month_start(day) -%}
    toStartOfMonth({{ day }})
{%- endmacro %}

{% macro days_in_month(day) -%}
    toDayOfMonth(toLastDayOfMonth({{ day }}))
{%- endmacro %}

{#- True when a lower-cased model name is a catalogue model: its match rules are any of (all of (kind, value)),
    halton_meter.catalogue.rate_rows.match_rules. A regex is searched (RE2's `match`, as Python's re.search);
    not_regex is a regex that must not match. Only regex clauses reach `match` as patterns (other values may
    not be valid regular expressions). -#}
{% macro matches_catalogue(name, rules) -%}
    arrayExists(
        clauses -> arrayAll(
            rule -> multiIf(
                rule.1 = 'equals', {{ name }} = rule.2,
                rule.1 = 'starts_with', startsWith({{ name }}, rule.2),
                rule.1 = 'ends_with', endsWith({{ name }}, rule.2),
                rule.1 = 'contains', position({{ name }}, rule.2) > 0,
                rule.1 = 'regex', match({{ name }}, if(rule.1 = 'regex', rule.2, '')),
                rule.1 = 'not_regex', not match({{ name }}, if(rule.1 = 'not_regex', rule.2, '')),
                false
            ),
            clauses
        ),
        {{ rules }}
    )
{%- endmacro %}

{#- The catalogue mode a call is billed in, as halton_meter.pricing.call_mode: a batch API call or a call served
    at batch tier is batch; flex and priority tiers are their modes except at Anthropic (its Priority Tier is
    billed at standard rates); anything else is standard. -#}
{% macro call_mode(provider, service_tier, is_batch) -%}
    multiIf(
        {{ is_batch }} or lowerUTF8(ifNull({{ service_tier }}, '')) = 'batch', 'batch',
        lowerUTF8(ifNull({{ service_tier }}, '')) in ('flex', 'priority') and {{ provider }} != 'anthropic',
            lowerUTF8(ifNull({{ service_tier }}, '')),
        'standard'
    )
{%- endmacro %}

{#- Milliseconds since the epoch, for window frames measured in time. -#}
{% macro epoch_ms(ts) -%}
    toUnixTimestamp64Milli({{ ts }})
{%- endmacro %}

{#- Exact distinct count and exact quantiles: deterministic, so re-running changes no number. -#}
{% macro count_distinct(expression) -%}
    uniqExact({{ expression }})
{%- endmacro %}

{% macro exact_quantile(level, expression) -%}
    quantileExactLow({{ level }})({{ expression }})
{%- endmacro %}

{% macro sorted_distinct(expression) -%}
    arraySort(groupUniqArray({{ expression }}))
{%- endmacro %}

{#- The loop window in milliseconds, as a literal (window frames take no expressions). -#}
{% macro loop_window_ms() -%}
    {{ (var('loop_window_seconds') | int) * 1000 }}
{%- endmacro %}

{#- Data tests on the large incremental models check what the last run (re)built, not every row again:
    their `where` config names a placeholder this override expands (a test's `where` cannot call macros).
      __rebuilt_by_last_run__  rows whose day the model's last run rebuilt (all rows after a full build)
      __recent_days__          calls of the last two days before as_of (partition-pruned on the raw table)
    Any other `where` is applied as written. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- if '__rebuilt_by_last_run__' in where -%}
            {%- set where = where | replace(
                '__rebuilt_by_last_run__',
                'priced_at = (select max(priced_at) from ' ~ relation ~ ')'
            ) -%}
        {%- endif -%}
        {%- if '__recent_days__' in where -%}
            {%- set where = where | replace('__recent_days__', 'day >= ' ~ as_of_date() ~ ' - 2') -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

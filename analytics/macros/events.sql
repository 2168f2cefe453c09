{#- What every staging model does to its event table: ids as text (DuckDB keeps
    UUIDs, Snowflake text), `timestamp` as event_at, the message's place in Kafka
    kept for lineage, when the loader stored it (what incremental marts pick new
    rows by), and one row per event id: an event sent again (a simulate rerun
    with the same seed sends the same ids) is kept as first loaded; rows stored
    before `_loaded_at` existed read NULL there and count as loaded first. `"TIMESTAMP"` quoted in capitals names the column in both
    (DuckDB matches names regardless of case, Snowflake stores them upper-case). -#}
{% macro staged_events(table, columns) %}
select
    cast(id as varchar) as event_id,
    cast(device_id as varchar) as device_id,
    cast(trip_id as varchar) as trip_id,
    "TIMESTAMP" as event_at,
    {% for column in columns -%}
    {{ column }},
    {% endfor -%}
    _kafka_timestamp as kafka_at,
    _kafka_partition as kafka_partition,
    _kafka_offset as kafka_offset,
    _load_id as load_id,
    _loaded_at as loaded_at
from {{ source('iot', table) }}
qualify row_number() over (
    partition by id order by _loaded_at nulls first, _kafka_partition, _kafka_offset
) = 1
{% endmacro %}


{#- In an incremental run, a condition keeping the rows the loader stored after
    the newest row the model was last built from, less `lookback_minutes` for
    transactions that were still committing then; in a full build, none. The
    loader's clock, not the producer's: late, out-of-order and timestamp-less
    events are picked up whenever they are stored. -#}
{% macro since_last_build(column='loaded_at') %}
{%- if is_incremental() -%}
{{ column }} > (
    select coalesce(
        {{ dbt.dateadd('minute', -var('lookback_minutes'), 'max(last_loaded_at)') }},
        cast('1970-01-01' as timestamp)
    )
    from {{ this }}
)
{%- else -%}
1 = 1
{%- endif -%}
{% endmacro %}


{#- Great-circle distance in km between two points given in degrees. -#}
{% macro haversine_km(lat1, lon1, lat2, lon2) %}
2 * 6371.0088 * asin(sqrt(
    power(sin(radians({{ lat2 }} - {{ lat1 }}) / 2), 2)
    + cos(radians({{ lat1 }})) * cos(radians({{ lat2 }}))
      * power(sin(radians({{ lon2 }} - {{ lon1 }}) / 2), 2)
))
{% endmacro %}


{#- The rows of `model` whose `key` (a trip, an incident) has events new since the
    last build, all of them, so that an incremental run rebuilds those keys whole;
    in a full build, every row. -#}
{% macro rows_of_changed(model, key) %}
select *
from {{ ref(model) }}
where {{ key }} in (select {{ key }} from {{ ref(model) }} where {{ since_last_build() }})
{% endmacro %}

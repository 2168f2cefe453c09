{{ config(materialized='view') }}

-- Each vehicle's newest GPS fix (the later message on a tie), with the make and
-- model of its trip. A view: it follows every load without a dbt run (a trip dbt
-- has not built yet reads NULL make and model). It reads the loader's table as it
-- is: a copy of an event sent again is the same fix, so it cannot change which
-- fix is the newest, and no duplicates need seeking.
-- depends_on: {{ ref('stg_gps_fixes') }}
with latest as (
    select
        cast(device_id as varchar) as device_id,
        cast(trip_id as varchar) as trip_id,
        "TIMESTAMP" as event_at,
        lat,
        lon,
        speed_kmh,
        heading_deg
    from {{ source('iot', 'gps_data') }}
    qualify row_number() over (
        partition by device_id order by "TIMESTAMP" desc, _kafka_partition desc, _kafka_offset desc
    ) = 1
)

select l.device_id, l.trip_id, t.make, t.model, l.event_at, l.lat, l.lon, l.speed_kmh,
    l.heading_deg
from latest as l
left join {{ ref('trips') }} as t on t.trip_id = l.trip_id

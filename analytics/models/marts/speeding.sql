{{ config(unique_key='event_id') }}

-- Every camera pass more than `speeding_margin_kmh` over the limit, with the vehicle
-- and the place. An incremental run rebuilds the passes of the trips that got new
-- ones.
-- depends_on: {{ ref('stg_camera_passes') }}
with passes as (
    {{ staged_events('traffic_data', where=changed('traffic_data', 'trip_id')) }}
)

select
    p.event_id,
    p.device_id,
    p.trip_id,
    v.make,
    v.model,
    p.camera_id,
    p.event_at as passed_at,
    p.lat,
    p.lon,
    p.measured_speed_kmh,
    p.speed_limit_kmh,
    round(p.measured_speed_kmh - p.speed_limit_kmh, 1) as over_limit_kmh,
    p.loaded_at as last_loaded_at
from passes as p
left join {{ ref('trips') }} as v on v.trip_id = p.trip_id
where p.measured_speed_kmh > p.speed_limit_kmh + {{ var('speeding_margin_kmh') }}

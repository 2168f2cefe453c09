{{ config(unique_key='event_id') }}

-- Every camera pass more than `speeding_margin_kmh` over the limit, with the vehicle
-- and the place. Passes only ever add up: an incremental run adds the new ones.
with vehicles as (
    select trip_id, any_value(make) as make, any_value(model) as model
    from {{ ref('stg_vehicle_readings') }}
    group by trip_id
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
from {{ ref('stg_camera_passes') }} as p
left join vehicles as v on v.trip_id = p.trip_id
where p.measured_speed_kmh > p.speed_limit_kmh + {{ var('speeding_margin_kmh') }}
    and {{ since_last_build('p.loaded_at') }}

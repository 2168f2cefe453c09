{{ config(unique_key='vehicle_day_id') }}

-- One row per vehicle and (UTC) day: how far and how long it drove, how fast, the
-- fuel or battery it used, and the cameras it passed. An incremental run rebuilds
-- the days that got new readings or camera passes.
-- depends_on: {{ ref('stg_vehicle_readings') }}
-- depends_on: {{ ref('stg_camera_passes') }}
with changed as (
    select distinct cast(device_id as varchar) as device_id, cast("TIMESTAMP" as date) as day
    from {{ source('iot', 'vehicle_data') }}
    where {{ since_last_build() }}
    union
    select distinct cast(device_id as varchar) as device_id, cast("TIMESTAMP" as date) as day
    from {{ source('iot', 'traffic_data') }}
    where {{ since_last_build() }}
),

vehicle_readings as (
    {{ staged_events('vehicle_data', where='cast(device_id as varchar) in (select device_id from changed)') }}
),

camera_passes as (
    {{ staged_events('traffic_data', where='cast(device_id as varchar) in (select device_id from changed)') }}
),

readings as (
    select
        r.*,
        c.day,
        lag(r.event_at) over (partition by r.trip_id, c.day order by r.event_at) as previous_at
    from vehicle_readings as r
    inner join changed as c
        on c.device_id = r.device_id and c.day = cast(r.event_at as date)
),

days as (
    select
        device_id,
        day,
        any_value(make) as make,
        any_value(model) as model,
        any_value(fuel_type) as fuel_type,
        count(distinct trip_id) as trips,
        max(odometer_km) - min(odometer_km) as distance_km,
        -- The time from each reading to the next while the vehicle moved.
        sum(case when speed_kmh > 0 and previous_at is not null
            then {{ dbt.datediff('previous_at', 'event_at', 'millisecond') }} else 0 end
        ) / 1000.0 as driving_s,
        max(speed_kmh) as top_speed_kmh,
        min_by(fuel_level_pct, event_at) - max_by(fuel_level_pct, event_at) as fuel_used_pct,
        max(loaded_at) as last_loaded_at
    from readings
    group by device_id, day
),

passes as (
    select
        p.device_id,
        c.day,
        count(*) as camera_passes,
        sum(case when p.measured_speed_kmh > p.speed_limit_kmh then 1 else 0 end) as over_limit,
        max(p.loaded_at) as last_loaded_at
    from camera_passes as p
    inner join changed as c
        on c.device_id = p.device_id and c.day = cast(p.event_at as date)
    group by p.device_id, c.day
)

select
    d.device_id || '/' || cast(d.day as varchar) as vehicle_day_id,
    d.device_id,
    d.day,
    d.make,
    d.model,
    d.fuel_type,
    d.trips,
    round(d.distance_km, 3) as distance_km,
    round(d.driving_s, 1) as driving_s,
    round(d.distance_km / nullif(d.driving_s / 3600.0, 0), 1) as avg_speed_kmh,
    d.top_speed_kmh,
    round(d.fuel_used_pct, 2) as fuel_used_pct,
    coalesce(p.camera_passes, 0) as camera_passes,
    coalesce(p.over_limit, 0) as over_limit,
    greatest(d.last_loaded_at, coalesce(p.last_loaded_at, d.last_loaded_at)) as last_loaded_at
from days as d
left join passes as p on p.device_id = d.device_id and p.day = d.day

{{ config(unique_key='incident_id') }}

-- One row per incident: where and what, when it was reported and resolved, and the
-- time between. The wire format has no report of a responder's arrival, so there
-- is no time to respond to give. An incremental run rebuilds the incidents with
-- new reports (a resolution arrives after its report).
-- depends_on: {{ ref('stg_emergency_reports') }}
with reports as (
    {{ staged_events('emergency_data', where=changed('emergency_data', 'incident_id')) }}
),

incidents as (
    select
        incident_id,
        any_value(incident_type) as incident_type,
        any_value(device_id) as device_id,
        any_value(trip_id) as trip_id,
        any_value(description) as description,
        any_value(lat) as lat,
        any_value(lon) as lon,
        min(case when status = 'active' then event_at end) as reported_at,
        min(case when status = 'resolved' then event_at end) as resolved_at,
        max(loaded_at) as last_loaded_at
    from reports
    group by incident_id
)

select
    incident_id,
    incident_type,
    case when resolved_at is null then 'active' else 'resolved' end as status,
    device_id,
    trip_id,
    description,
    lat,
    lon,
    reported_at,
    resolved_at,
    {{ dbt.datediff('reported_at', 'resolved_at', 'millisecond') }} / 1000.0 as time_to_resolve_s,
    last_loaded_at
from incidents

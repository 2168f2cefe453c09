{{ staged_events('emergency_data', ['cast(incident_id as varchar) as incident_id', 'incident_type', 'status', 'lat', 'lon', 'description']) }}

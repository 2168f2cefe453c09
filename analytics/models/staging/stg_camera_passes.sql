{{ staged_events('traffic_data', ['cast(camera_id as varchar) as camera_id', 'lat', 'lon', 'measured_speed_kmh', 'speed_limit_kmh']) }}

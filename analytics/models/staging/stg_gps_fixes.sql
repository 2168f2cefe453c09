{{ staged_events('gps_data', ['lat', 'lon', 'speed_kmh', 'heading_deg', 'accuracy_m']) }}

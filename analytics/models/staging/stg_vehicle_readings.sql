{{ staged_events('vehicle_data', ['lat', 'lon', 'speed_kmh', 'heading_deg', 'odometer_km', 'fuel_level_pct', 'make', 'model', 'year as model_year', 'fuel_type', 'route_source']) }}

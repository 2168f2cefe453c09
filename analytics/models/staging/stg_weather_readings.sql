{{ staged_events('weather_data', ['lat', 'lon', 'temperature_c', 'humidity_pct', 'precipitation_mm_h', 'wind_speed_kmh', 'wind_direction_deg', 'air_quality_index', 'condition']) }}

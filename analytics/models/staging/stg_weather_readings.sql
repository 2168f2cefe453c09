{{ staged_events('weather_data') }}

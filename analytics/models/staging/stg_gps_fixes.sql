{{ staged_events('gps_data') }}

{{ staged_events('emergency_data') }}

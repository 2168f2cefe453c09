{{ staged_events('vehicle_data') }}

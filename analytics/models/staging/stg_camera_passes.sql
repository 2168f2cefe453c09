{{ staged_events('traffic_data') }}

"""iot-streaming's dashboard: data access for the Streamlit app (app.py)."""

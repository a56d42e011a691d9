"""Running the server: metrics, the dashboard's samples, the heartbeat sweep, shutdown."""

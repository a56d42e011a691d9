"""A node's part in a cluster of imserver processes: the Redis bus, and the link
between it and the hub."""

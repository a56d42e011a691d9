"""imserver: a real-time chat server on Tornado."""

__version__ = "0.1.0"

"""The chat core, without I/O: the wire protocol, rooms, the hub, the registry's
records, outbound framing and the store's interface. Imports nothing from the other
layers, nor Tornado."""

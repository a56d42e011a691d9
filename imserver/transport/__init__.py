"""Bytes on the socket: the inbound frame parser, the push-mode stream, the codec,
coalesced writes and the send pool."""

"""Cluster mode: the links between server processes (nodes) that share a message store.

`redisbus.py` needs the optional `redis` package (the `cluster` extra): import it
only when the broker backend is Redis, never from here.
"""

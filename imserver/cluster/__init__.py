"""Cluster mode: the links between server processes (nodes) that share a message
store. `node.py` is a node's part (the hub's Broker); `redisbus.py` carries it, and
needs the optional `redis` package (the `cluster` extra): it is imported only when
the broker backend is Redis, never from here.
"""

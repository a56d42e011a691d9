"""The connection directory's parts that need no Redis: its rows, and the kicks other
nodes send, taken as hostile input. Against Redis and real nodes:
tests/test_admin_cluster.py."""

from __future__ import annotations

import json
from typing import Any

from imserver.cluster.directory import Directory, _recent, client_row, summary
from imserver.cluster.node import ClusterLink
from imserver.core.registry import Connection, Registry, User
from tests.core import Wire, wire


class FakeBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def subscribe(self, topic: str) -> None:
        pass

    def unsubscribe(self, topic: str) -> None:
        pass

    def publish(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, json.loads(payload)))

    def health(self) -> str | None:
        return None


def node() -> tuple[ClusterLink, Directory, Registry, FakeBus]:
    registry = Registry()
    bus = FakeBus()
    link = ClusterLink(lambda _: bus, registry, node_id="node-a", prefix="t",  # type: ignore[arg-type,return-value]
                       lease_seconds=3.0)
    link.attach(object())  # type: ignore[arg-type]  # kicks need no hub
    return link, Directory(link), registry, bus


def connect(registry: Registry, conn_id: str, user: str) -> Connection:
    conn = Connection(id=conn_id, user=User(user, user.title()), transport=Wire(), remote="10.0.0.1",
                      reconnect=2, cause="network", rooms={"b", "a"})
    registry.add(conn)
    return conn


def heard(link: ClusterLink, message: Any) -> None:
    link.on_message("ctl", json.dumps(message).encode())


def test_a_row_holds_the_summary_and_reads_back_with_the_live_fields_unknown():
    registry = Registry()
    conn = connect(registry, "c1", "alice")
    row = client_row(summary(conn, "node-b"), "node-b")
    assert row["id"] == "c1" and row["user"] == "alice" and row["name"] == "Alice"
    assert row["rooms"] == ["a", "b"] and row["remote"] == "10.0.0.1" and row["reconnect"] == 2
    assert row["node"] == "node-b" and abs(row["connected_at"] - conn.connected_at) < 0.001
    assert row["rtt"] is None and row["idle"] is None and row["frames_in"] is None
    assert row["health"] is None and row["cause"] == "network"


def test_another_nodes_recent_counts_are_taken_as_hostile_input():
    good = {"terminations": {"kicked": 2}, "reconnects": {"network": 5}}
    assert _recent(json.dumps(good).encode()) == good
    assert _recent(None) == {} and _recent(b"not json") == {} and _recent(b"[1]") == {}
    assert _recent(json.dumps({"terminations": {"x" * 100: 1, "a": -1, "b": True, "c": "7",
                                                "d": 1.5, "e": 2 ** 60, "f": 3},
                               "reconnects": [1], "other": {"g": 1}}).encode()) == {
        "terminations": {"x" * 40: 1, "f": 3}}


def test_a_kick_closes_the_users_or_one_connection_here_with_4003():
    link, _, registry, _ = node()
    a1, a2 = connect(registry, "a1", "alice"), connect(registry, "a2", "alice")
    b1 = connect(registry, "b1", "bob")
    heard(link, {"k": "kick", "node": "node-b", "user": "alice", "reason": " suspended "})
    assert wire(a1).closed == wire(a2).closed == (4003, "suspended")
    assert a1.close_reason == "kicked" and wire(b1).closed is None
    heard(link, {"k": "kick", "node": "node-b", "conn": "b1", "reason": "x" * 500})
    assert wire(b1).closed == (4003, "x" * 120)


def test_a_kick_from_this_node_is_not_taken_again():
    link, directory, registry, bus = node()
    a1 = connect(registry, "a1", "alice")
    directory.kick("bye", user="alice")
    assert bus.published == [("ctl", {"k": "kick", "reason": "bye", "user": "alice", "node": "node-a"})]
    heard(link, bus.published[0][1])
    assert wire(a1).closed is None


def test_hostile_kicks_are_dropped_and_close_nothing(caplog):
    link, _, registry, _ = node()
    a1 = connect(registry, "a1", "alice")
    for message in (
            {"k": "kick", "node": "n", "reason": "r"},  # neither
            {"k": "kick", "node": "n", "user": "alice", "conn": "a1", "reason": "r"},  # both
            {"k": "kick", "node": "n", "user": ["alice"], "reason": "r"},
            {"k": "kick", "node": "n", "user": "", "reason": "r"},
            {"k": "kick", "node": "n", "user": "alice" * 200, "reason": "r"},
            {"k": "kick", "node": "n", "conn": 7, "reason": "r"},
            ["kick"]):
        heard(link, message)
    assert wire(a1).closed is None
    assert caplog.text.count("malformed message on ctl") == 7
    heard(link, {"k": "kick", "node": "n", "user": "alice", "reason": {"no": "text"}})
    assert wire(a1).closed == (4003, "disconnected by an operator")


def test_a_kick_from_another_node_closes_with_the_reason_the_closed_log_keeps():
    from imserver.ops.stats import ClosedLog

    registry = Registry()
    link = ClusterLink(lambda _: FakeBus(), registry, node_id="node-a", prefix="t",  # type: ignore[arg-type,return-value]
                       lease_seconds=3.0)
    link.attach(object())  # type: ignore[arg-type]
    log = ClosedLog()
    Directory(link)
    a1 = connect(registry, "a1", "alice")
    heard(link, {"k": "kick", "node": "node-b", "conn": "a1", "reason": "flooding"})
    assert wire(a1).closed == (4003, "flooding")
    registry.remove(a1)
    assert log.add(a1).operator_reason == "flooding"

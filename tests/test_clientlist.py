"""The admin client list without a server: filters, sorts, keyset pages and their
cursors, the totals and the small tables, what is rebuilt when, and every query
argument as hostile input. Through the HTTP API and two nodes: test_admin_clients.py."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from imserver.core.registry import Connection, Registry, User
from imserver.http.clientlist import (
    COLUMNS,
    DEFAULT_LIMIT,
    LIVE_MAX_AGE,
    MAX_LIMIT,
    BadQuery,
    ClientList,
    Query,
    parse_query,
    query_arguments,
)
from imserver.ops.stats import RecentCounts
from tests.core import Wire


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def local(registry: Registry, conn_id: str, user: str, *, name: str | None = None,
          rooms: tuple[str, ...] = (), remote: str = "10.0.0.1", connected_at: float = 0.0,
          last_seen: float = 1000.0,
          rtt: float | None = None, frames_in: int = 0, reconnect: int = 0, cause: str = "",
          agent: str = "ua") -> Connection:
    conn = Connection(id=conn_id, user=User(user, name or user), transport=Wire(), remote=remote,
                      user_agent=agent, reconnect=reconnect, cause=cause,
                      connected_at=1.7e9 + connected_at, last_seen=last_seen, rtt=rtt,
                      frames_in=frames_in, rooms=set(rooms))
    registry.add(conn)
    return conn


def remote_row(conn_id: str, user: str, *, node: str = "node-b", name: str | None = None,
               rooms: tuple[str, ...] = (), remote: str = "10.1.0.1", connected_at: float = 0.0,
               reconnect: int = 0, cause: str = "") -> dict[str, Any]:
    """A row as the directory reads another node's (cluster/directory.py's client_row)."""
    return {"id": conn_id, "user": user, "name": name or user, "rooms": sorted(rooms), "remote": remote,
            "user_agent": "", "connected_at": 1.7e9 + connected_at, "last_seen": None, "idle": None,
            "rtt": None, "frames_in": None, "frames_out": None, "reconnect": reconnect, "cause": cause,
            "health": None, "node": node}


def listing(node: str | None = None) -> tuple[ClientList, Registry, Clock]:
    registry, clock = Registry(), Clock()
    return ClientList(registry, ping_timeout=20.0, node=node, clock=clock, wall=lambda: clock() + 5e8), \
        registry, clock


def ids(page: Any) -> list[str]:
    return [row["id"] for row in page.rows]


def walk(clients: ClientList, query: Query, others: list[dict[str, Any]] | None = None) -> list[str]:
    """Every row of a query, page after page through the `next` cursors."""
    seen: list[str] = []
    page = clients.page(query, others)
    while True:
        seen += ids(page)
        if page.next is None:
            return seen
        page = clients.page(parse_query({**args_of(query), "cursor": page.next}), others)


def args_of(query: Query) -> dict[str, str]:
    return {k: str(v) for k, v in query.to_json().items()}


def test_the_default_page_is_the_newest_connections_bounded_with_the_totals():
    clients, registry, _ = listing()
    for i in range(250):
        local(registry, f"c{i:03}", f"u{i % 40}", rooms=(f"r{i % 7}",), connected_at=i)
    page = clients.page(parse_query({}))
    assert len(page.rows) == DEFAULT_LIMIT and page.matched == 250 and page.position == 0
    assert ids(page)[:3] == ["c249", "c248", "c247"]
    assert page.totals == {"connections": 250, "users": 40, "rooms": 7, "nodes": 1}
    assert page.prev is None and page.next is not None
    row = page.rows[0]
    assert row["user"] == "u9" and row["rooms"] == ["r4"] and row["health"] == "green"
    assert row["last_seen"] == pytest.approx(1000.0 + 5e8) and row["idle"] == 0.0 and "node" not in row


def test_pages_cover_every_row_once_forward_and_back_in_any_order():
    clients, registry, clock = listing(node="node-a")
    rng = random.Random(7)
    for i in range(157):
        rooms = tuple(rng.sample(["x", "y", "z"], rng.randrange(3)))
        local(registry, f"a{i}", f"user{rng.randrange(30)}", rooms=rooms,
              remote=f"10.0.{rng.randrange(3)}.{rng.randrange(20)}", connected_at=rng.randrange(50),
              last_seen=clock() - rng.random() * 30, rtt=rng.choice([None, rng.random()]),
              frames_in=rng.randrange(5), reconnect=rng.randrange(3))
    others = [remote_row(f"b{i}", f"user{rng.randrange(30)}", connected_at=rng.randrange(50),
                         node=rng.choice(["node-b", "node-c"])) for i in range(143)]
    for sort in COLUMNS:
        for order in ("asc", "desc"):
            query = parse_query({"sort": sort, "order": order, "limit": "23"})
            forward = walk(clients, query, others)
            everyone = [c.id for c in registry] + [r["id"] for r in others]
            assert sorted(forward) == sorted(everyone), (sort, order)
            # Back from the last page through the `prev` cursors: the same order.
            page = clients.page(parse_query({**args_of(query), "cursor": clients.page(
                query, others).next or ""}), others) if len(forward) > 23 else None
            if page is None:
                continue
            last = page
            while last.next is not None:
                last = clients.page(parse_query({**args_of(query), "cursor": last.next}), others)
            backward = ids(last)
            while last.prev is not None:
                last = clients.page(parse_query({**args_of(query), "cursor": last.prev}), others)
                backward = ids(last) + backward
            assert backward == forward, (sort, order)


def test_sorts_put_unknown_values_last_either_way_and_numbers_in_names_by_value():
    clients, registry, clock = listing(node="node-a")
    local(registry, "a1", "user10", rtt=0.002, last_seen=clock() - 1)
    local(registry, "a2", "user2", rtt=None, last_seen=clock() - 12)
    local(registry, "a3", "User1", rtt=0.001, last_seen=clock() - 3)
    others = [remote_row("b1", "user3")]

    def order(sort: str, direction: str) -> list[str]:
        return ids(clients.page(parse_query({"sort": sort, "order": direction}), others))

    assert order("user", "asc") == ["a3", "a2", "b1", "a1"]  # User1, user2, user3, user10
    assert order("user", "desc") == ["a1", "b1", "a2", "a3"]
    assert order("rtt", "asc") == ["a3", "a1", "a2", "b1"]  # not measured, or another node's: last
    assert order("rtt", "desc") == ["a1", "a3", "b1", "a2"]
    assert order("idle", "asc") == ["a1", "a3", "a2", "b1"]  # the most recent frame first
    assert order("idle", "desc") == ["a2", "a3", "a1", "b1"]
    assert parse_query({"sort": "user"}).order == "asc" and parse_query({"sort": "rtt"}).order == "desc"


def test_each_filter_on_this_nodes_connections_and_the_other_nodes_rows():
    clients, registry, clock = listing(node="node-a")
    local(registry, "a1", "g:1", name="Alice", rooms=("general", "random"), remote="10.0.0.5")
    local(registry, "a2", "g:2", name="Bob", rooms=("general",), remote="192.168.1.9",
          last_seen=clock() - 15, reconnect=2, cause="network")
    local(registry, "a3", "g:3", name="alice2", rooms=("support",), remote="10.0.1.7", reconnect=1,
          cause="error")
    others = [remote_row("b1", "g:1", name="Alice", rooms=("support",), remote="10.0.0.6"),
              remote_row("b2", "g:4", name="Dave", node="node-c", reconnect=1, cause="network")]

    def found(**filters: str) -> list[str]:
        return sorted(ids(clients.page(parse_query(filters), others)))

    assert found(user="alice") == ["a1", "b1"]  # the name in any case, on every node
    assert found(user="g:2") == ["a2"]  # or the user id
    assert found(q="ali") == ["a1", "a3", "b1"]  # the search: parts of names, ids, rooms, addresses
    assert found(q="alice support") == ["a3", "b1"]
    assert found(q="10.0.0") == ["a1", "b1"]
    assert found(q="node-c") == ["b2"]
    assert found(room="general") == ["a1", "a2"] and found(room="gen") == []
    assert found(remote="10.0.") == ["a1", "a3", "b1"] and found(remote="192.168.1.9") == ["a2"]
    assert found(node="node-a") == ["a1", "a2", "a3"] and found(node="node-c") == ["b2"]
    assert found(health="amber") == ["a2"] and found(health="green") == ["a1", "a3"]
    assert found(health="unknown") == ["b1", "b2"]
    assert found(cause="network") == ["a2", "b2"] and found(cause="none") == ["a1", "b1"]
    assert found(cause="error", room="support") == ["a3"]
    page = clients.page(parse_query({"user": "alice"}), others)
    assert page.matched == 2 and page.totals["connections"] == 5 and page.totals["nodes"] == 3


def test_a_cursor_keeps_its_place_while_connections_come_and_go():
    clients, registry, _ = listing()
    conns = [local(registry, f"c{i:02}", "u", connected_at=i) for i in range(10)]
    first = clients.page(parse_query({"limit": "4"}))
    assert ids(first) == ["c09", "c08", "c07", "c06"]
    local(registry, "c99", "u", connected_at=99)  # a new one, on the first page
    registry.remove(conns[6])  # the last row of the page went away
    second = clients.page(parse_query({"limit": "4", "cursor": first.next or ""}))
    assert ids(second) == ["c05", "c04", "c03", "c02"] and second.position == 4
    back = clients.page(parse_query({"limit": "4", "cursor": second.prev or ""}))
    assert ids(back) == ["c99", "c09", "c08", "c07"] and back.position == 0 and back.prev is None
    for conn in conns[:6]:  # every row after the cursor goes: the last page instead
        registry.remove(conn)
    assert ids(clients.page(parse_query({"limit": "4", "cursor": second.next or ""}))) == [
        "c99", "c09", "c08", "c07"]


def test_an_index_is_built_again_only_when_what_it_shows_changed():
    clients, registry, clock = listing()
    conns = [local(registry, f"c{i}", f"u{i}", connected_at=i) for i in range(5)]
    others = [remote_row("b1", "x")]
    query = parse_query({"limit": "2"})
    page = clients.page(query, others)
    for _ in range(3):  # more pages, more requests, time passing: nothing to build
        clients.page(parse_query({"limit": "2", "cursor": page.next or ""}), others)
        clock.now += 60
    assert clients.builds == 1
    conns[0].rooms.add("lobby")
    registry.rooms_changed()
    clients.page(query, others)
    assert clients.builds == 2
    clients.page(query, list(others))  # the directory read new rows
    assert clients.builds == 3
    live = parse_query({"sort": "idle"})
    clients.page(live, others)
    clock.now += LIVE_MAX_AGE / 2
    clients.page(live, others)
    assert clients.builds == 4
    clock.now += LIVE_MAX_AGE
    clients.page(live, others)  # the time since the last frame moved on
    assert clients.builds == 5
    assert clients.totals(others) == {"connections": 6, "users": 6, "rooms": 1, "nodes": 2}


def test_the_small_tables():
    clients, registry, _ = listing(node="node-a")
    for i in range(3):
        local(registry, f"a{i}", "g:ann", name="Ann", rooms=("lobby",))
    local(registry, "a9", "g:bob", name="Bob", rooms=("lobby", "dev"))
    others = [remote_row("b1", "g:ann", name="Ann", rooms=("dev",)), remote_row("b2", "g:cy", name="Cy")]
    summary = clients.summary(others, top=2)
    assert summary["top_users"] == [
        {"user": "g:ann", "name": "Ann", "connections": 4, "nodes": {"node-a": 3, "node-b": 1}},
        {"user": "g:bob", "name": "Bob", "connections": 1, "nodes": {"node-a": 1}}]
    assert summary["rooms"] == [{"room": "dev", "members": 2, "connections": 2},
                                {"room": "lobby", "members": 2, "connections": 4}]
    assert summary["nodes"] == [{"node": "node-a", "connections": 4, "users": 2},
                                {"node": "node-b", "connections": 2, "users": 2}]
    alone, _, _ = listing()
    assert alone.summary()["nodes"] == [{"node": None, "connections": 0, "users": 0}]


def test_recent_counts_forget_what_is_older_than_the_window():
    clock = Clock()
    counts = RecentCounts(300, clock=clock)
    counts.add("kicked")
    clock.now += 100
    counts.add("heartbeat_timeout", 3)
    counts.add("kicked")
    assert counts.counts() == {"heartbeat_timeout": 3, "kicked": 2}
    clock.now += 250
    assert counts.counts() == {"heartbeat_timeout": 3, "kicked": 1}
    clock.now += 100
    assert counts.counts() == {}


def cursor(**fields: Any) -> str:
    data = {"s": "connected_at", "o": "desc", "v": 1.5, "i": "c1", "d": "next", **fields}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("args", [
    {"password": "x"}, {"sort": "password"}, {"sort": ""}, {"order": "up"}, {"limit": "0"},
    {"limit": str(MAX_LIMIT + 1)}, {"limit": "-1"}, {"limit": "1e3"}, {"limit": "9" * 5000},
    {"limit": "٣"}, {"limit": ""}, {"health": "red"}, {"cause": "boredom"},
    {"q": "x" * 201}, {"user": "a\x00b"}, {"room": "a\nb"}, {"q": " ".join("abcdefghij")},
    {"cursor": "%%%"}, {"cursor": "a" * 2000}, {"cursor": base64.b64encode(b"\xff\xfe").decode()},
    {"cursor": cursor(s="user")}, {"cursor": cursor(o="asc")}, {"cursor": cursor(v="text")},
    {"cursor": cursor(v=True)}, {"cursor": cursor(v=[1])}, {"cursor": cursor(i="")},
    {"cursor": cursor(i=5)}, {"cursor": cursor(d="sideways")}, {"cursor": cursor(extra=1)},
    {"sort": "user", "cursor": cursor(s="user", o="asc", v=7)},
    {"cursor": base64.urlsafe_b64encode(b"[" * 100_000).decode()[:1000]},
    {"cursor": base64.urlsafe_b64encode(json.dumps({"s": 1}).encode()).decode()},
])
def test_hostile_query_arguments_are_refused_with_a_reason(args):
    with pytest.raises(BadQuery) as info:
        parse_query(args)
    assert str(info.value)


def test_good_arguments_and_their_defaults():
    query = parse_query({"q": "  alice  ", "health": "amber", "limit": "1000", "sort": "user",
                         "cursor": cursor(s="user", o="asc", v="ann", i="c9", d="prev"), "room": ""})
    assert query.filters == (("q", "alice"), ("health", "amber")) and query.limit == 1000
    assert query.sort == "user" and query.order == "asc" and query.cursor is not None
    assert query.cursor.value == "ann" and query.cursor.direction == "prev"
    assert parse_query({}) == Query()
    with pytest.raises(BadQuery):
        query_arguments({"limit": [b"1", b"2"]})
    with pytest.raises(BadQuery):
        query_arguments({"q": [b"\xff"]})
    assert query_arguments({"q": ["é".encode()]}) == {"q": "é"}


def test_a_page_between_two_ticks_may_use_the_last_index_less_the_rows_that_closed():
    clients, registry, clock = listing()
    conns = [local(registry, f"c{i}", f"u{i}", connected_at=i) for i in range(6)]
    assert ids(clients.page(parse_query({"limit": "3"}))) == ["c5", "c4", "c3"]
    registry.remove(conns[4])
    local(registry, "c9", "u9", connected_at=9)
    early = clients.page(parse_query({"limit": "3"}), stale_ok=1.0)
    assert ids(early) == ["c5", "c3"] and clients.builds == 1  # no sort: c9 shows at the tick
    clock.now += 1.5
    assert ids(clients.page(parse_query({"limit": "3"}), stale_ok=1.0)) == ["c9", "c5", "c3"]
    assert clients.builds == 2


def test_names_sort_numbers_by_value_however_long():
    clients, registry, _ = listing()
    for conn_id, name in (("a", "x10"), ("b", "x9"), ("c", "x" + "9" * 5000), ("d", "x010"), ("e", "X2")):
        local(registry, conn_id, f"g:{conn_id}", name=name)
    page = clients.page(parse_query({"sort": "user"}))
    # x10 and x010 are the same number: the connection id decides (a before d).
    assert [r["name"] for r in page.rows] == ["X2", "x9", "x10", "x010", "x" + "9" * 5000]


def test_a_cursor_on_a_long_text_value_is_one_the_server_takes_back():
    clients, registry, _ = listing()
    rooms = tuple(f"room-{i:02}-{'x' * 55}" for i in range(100))  # 100 rooms of 64 characters
    for i in range(3):
        local(registry, f"c{i}", f"u{i}", rooms=rooms)
    first = clients.page(parse_query({"sort": "rooms", "limit": "1"}))
    assert first.next is not None and len(first.next) <= 2048
    walked = ids(first)
    page = first
    while page.next is not None:
        page = clients.page(parse_query({"sort": "rooms", "limit": "1", "cursor": page.next}))
        walked += ids(page)
    assert walked == ["c0", "c1", "c2"]

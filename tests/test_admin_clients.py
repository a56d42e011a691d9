"""The admin API's client list over HTTP, on one server and on two nodes of a cluster
(CLUSTER_TOO: the clients spread over both, the API asked on the first): pages that
cover every connection once, sorts, filters, totals with every page, the small
tables, and every hostile argument answered 400, never 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import make_config
from tests.waiting import until

CLUSTER_TOO = True
TOKEN = "admin-token-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config(tmp_path):
    # A heartbeat long enough for clients that do not read: Tornado's client stops
    # answering pings while a message it got waits to be read (its queue holds one).
    return make_config(tmp_path, admin={"token": TOKEN},
                       heartbeat={"ping_interval": 5.0, "ping_timeout": 30.0})


async def get(chat, path: str, query: dict[str, str] | str = "", expect: int = 200) -> Any:
    suffix = query if isinstance(query, str) else urlencode(query)
    url = f"{chat.url}/admin/api{path}" + (f"?{suffix}" if suffix else "")
    try:
        response = await chat.http.fetch(url, headers=BEARER)
    except HTTPClientError as exc:
        assert exc.code == expect, (url, exc.code, exc.response.body if exc.response else None)
        assert exc.response is not None
        body = json.loads(exc.response.body)
        assert body["error"] == "bad_request" and body["message"], body
        return body
    assert response.code == expect, (url, response.code)
    return json.loads(response.body)


async def everyone(chat, count: int) -> None:
    """Wait until the API counts `count` connections (in a cluster, the other node's come
    through the directory within its refresh)."""
    async def counted() -> bool:
        page = await get(chat, "/clients", {"limit": "1"})
        return bool(page["totals"]["connections"] == count)

    await until(counted, f"{count} connections listed")


async def pages(chat, query: dict[str, str]) -> list[dict[str, Any]]:
    """Every row of a query, following `next`."""
    rows: list[dict[str, Any]] = []
    page = await get(chat, "/clients", query)
    while True:
        rows += page["clients"]
        assert page["matched"] >= len(rows)
        if page["next"] is None:
            return rows
        page = await get(chat, "/clients", {**query, "cursor": page["next"]})


@pytest.mark.gen_test(timeout=60)
async def test_pages_sorts_filters_and_totals_of_every_nodes_connections(chat):
    conns = {}
    for i in range(24):
        name = f"user{i % 9}"
        query = f"&reconnect={1 + i % 2}&cause={'network' if i % 2 else 'watchdog'}" if i % 3 == 0 else ""
        client = await chat.connect(name, query=query)
        if i % 4 == 0:
            await client.join("lobby")
        if i % 5 == 0:
            await client.join("support")
        conns[client.welcome["conn"]] = (name, client)
    await everyone(chat, 24)
    await until(lambda: _rooms_listed(chat, "lobby", 6), "the rooms reach the directory")

    # Every connection once, a page at a time, newest first by default.
    rows = await pages(chat, {"limit": "5"})
    assert sorted(r["id"] for r in rows) == sorted(conns)
    times = [r["connected_at"] for r in rows]
    assert times == sorted(times, reverse=True)
    first = await get(chat, "/clients", {"limit": "5"})
    assert first["position"] == 0 and first["prev"] is None and first["matched"] == 24
    assert first["totals"] == {"connections": 24, "users": 9, "rooms": 2,
                               "nodes": len(chat.hosts)}
    assert (first["sort"], first["order"], first["limit"]) == ("connected_at", "desc", 5)
    second = await get(chat, "/clients", {"limit": "5", "cursor": first["next"]})
    assert second["position"] == 5
    back = await get(chat, "/clients", {"limit": "5", "cursor": second["prev"]})
    assert [r["id"] for r in back["clients"]] == [r["id"] for r in first["clients"]]

    # Sorted by user, names in the order people expect; the other way round too.
    by_user = await pages(chat, {"sort": "user", "limit": "7"})
    assert [r["name"] for r in by_user] == sorted((n for n, _ in conns.values()), key=lambda n: int(n[4:]))
    backwards = await pages(chat, {"sort": "user", "order": "desc", "limit": "100"})
    assert [r["id"] for r in backwards] == [r["id"] for r in by_user][::-1]

    # Filters: a user wherever connected, a room, a cause, a node; the totals stay the cluster's.
    user3 = await get(chat, "/clients", {"user": "USER3"})
    assert sorted(r["id"] for r in user3["clients"]) == sorted(
        cid for cid, (name, _) in conns.items() if name == "user3")
    assert user3["matched"] == 3 and user3["totals"]["connections"] == 24
    here = (await get(chat, "/stats")).get("node")
    nodes = {r.get("node") for r in rows}
    if len(chat.hosts) == 2:  # user3 opened the 4th, 13th and 22nd connections: on both nodes
        assert len(nodes) == 2 and {r["node"] for r in user3["clients"]} == nodes
    lobby = await get(chat, "/clients", {"room": "lobby"})
    assert lobby["matched"] == 6 and all("lobby" in r["rooms"] for r in lobby["clients"])
    network = await get(chat, "/clients", {"cause": "network"})
    assert network["matched"] == 4 and {r["cause"] for r in network["clients"]} == {"network"}
    first_time = await get(chat, "/clients", {"cause": "none"})
    assert first_time["matched"] == 16
    search = await get(chat, "/clients", {"q": "user1 support"})
    assert all(r["name"] == "user1" and "support" in r["rooms"] for r in search["clients"])
    assert (await get(chat, "/clients", {"remote": "127.0."}))["matched"] == 24
    assert (await get(chat, "/clients", {"remote": "10."}))["matched"] == 0
    if len(chat.hosts) == 2:
        other = (nodes - {here}).pop()
        on_b = await get(chat, "/clients", {"node": other})
        assert on_b["matched"] == 12 and {r["node"] for r in on_b["clients"]} == {other}
        assert all(r["rtt"] is None and r["health"] is None for r in on_b["clients"])
        assert (await get(chat, "/clients", {"health": "unknown"}))["matched"] == 12
        assert (await get(chat, "/clients", {"node": here}))["matched"] == 12
    else:
        assert (await get(chat, "/clients", {"health": "green"}))["matched"] == 24

    # The small tables (reconnects: the other node's come with its next refresh).
    async def summed() -> dict[str, Any] | None:
        found = await get(chat, "/summary", {"top": "3"})
        return found if found["reconnects"] == {"network": 4, "watchdog": 4} else None

    summary = await until(summed, "the reconnects of every node")
    assert [u["connections"] for u in summary["top_users"]] == [3, 3, 3]  # users 0-5 have 3 each
    assert {u["name"] for u in summary["top_users"]} <= {f"user{i}" for i in range(6)}
    assert all(sum(u["nodes"].values()) == 3 for u in summary["top_users"])
    assert {r["room"]: (r["members"], r["connections"]) for r in summary["rooms"]} == {
        "lobby": (6, 6), "support": (5, 5)}
    assert {n["node"]: n["connections"] for n in summary["nodes"]} == (
        {n: 12 for n in nodes} if len(chat.hosts) == 2 else {None: 24})
    assert summary["window"] == 300 and summary["terminations"] == {}
    stats = await get(chat, "/stats")
    assert (stats["connections"], stats["users"], stats["rooms"]) == (24, 9, 2)


async def _rooms_listed(chat, room: str, count: int) -> bool:
    return bool((await get(chat, "/clients", {"room": room}))["matched"] == count)


@pytest.mark.gen_test
async def test_the_recent_reconnects_and_terminations_add_up_over_the_nodes(chat):
    for i in range(4):
        await chat.connect(f"r{i}", query="&reconnect=1&cause=network")
    kicked = await chat.connect("kicked")
    await get(chat, "/clients", {"limit": "1"})  # the list is up

    async def all_counted() -> dict[str, Any] | None:
        summary = await get(chat, "/summary")
        return summary if summary["reconnects"] == {"network": 4} else None

    await until(all_counted, "both nodes' reconnects in the summary")
    response = await chat.http.fetch(f"{chat.url}/admin/api/clients/{kicked.welcome['conn']}/disconnect",
                                     method="POST", headers={**BEARER, "Content-Type": "application/json"},
                                     body=json.dumps({"reason": "spam"}))
    assert response.code == 200
    await kicked.closed()

    async def kick_counted() -> bool:
        summary = await get(chat, "/summary")
        stats = await get(chat, "/stats")
        return bool(summary["terminations"] == {"kicked": 1} and stats["terminations_5m"] == 1
                    and stats["reconnects_5m"] == 4)

    await until(kick_counted, "the termination counted")


HOSTILE = [
    "limit=0", "limit=1001", "limit=-5", "limit=abc", "limit=1.5", "limit=" + "9" * 400, "limit=%D9%A3",
    "limit=1&limit=2", "sort=password", "sort=", "order=sideways", "health=purple", "cause=boredom",
    "q=" + "x" * 300, "user=%00", "room=a%0Ab", "q=a+b+c+d+e+f+g+h+i", "node=%FF", "%FF=1",
    "cursor=nonsense", "cursor=" + "A" * 2000, "cursor=eyJzIjoxfQ", "secret=1", "limit=",
]


@pytest.mark.gen_test
async def test_hostile_arguments_are_answered_400_never_500(chat):
    await chat.connect("alice")
    for query in HOSTILE:
        await get(chat, "/clients", query, expect=400)
    for query in ("top=0", "top=101", "top=x", "top=1&top=2", "other=1", "top=%FF"):
        await get(chat, "/summary", query, expect=400)
    # A cursor of one sort is not taken for another.
    await chat.connect("bob")
    await everyone(chat, 2)
    page = await get(chat, "/clients", {"limit": "1"})
    assert page["next"] is not None
    await get(chat, "/clients", {"limit": "1", "sort": "user", "cursor": page["next"]}, expect=400)
    await get(chat, "/clients", {"limit": "1", "order": "asc", "cursor": page["next"]}, expect=400)
    assert (await get(chat, "/clients", {"limit": "1", "cursor": page["next"]}))["position"] == 1


@pytest.mark.gen_test
@pytest.mark.cluster_only
async def test_the_directory_reads_again_only_the_nodes_whose_rows_changed(chat, app):
    directory = app.runtime.directory
    assert directory is not None
    await chat.connect("here")  # node A
    await chat.connect("there")  # node B
    rows = await until(lambda: _other_rows(directory, 1), "node B's row")
    assert await directory.others() is rows  # nothing changed: not read, the same list
    await chat.connect("here2")
    await chat.connect("there2")
    changed = await until(lambda: _other_rows(directory, 2), "node B's second row")
    assert changed is not rows and {r["name"] for r in changed} == {"there", "there2"}


async def _other_rows(directory: Any, count: int) -> list[dict[str, Any]] | None:
    rows = await directory.others()
    return rows if len(rows) == count else None

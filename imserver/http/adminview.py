"""What the admin API and the dashboard's push channel show, and the pushing.

`AdminView` follows the registry's opened and closed connections (it keeps the
log of closed ones and counts terminations by reason and reconnects by cause
over the last minutes) and the samples taken once a second; in a cluster it
reads the other nodes' rows from the directory (one read shared by every caller
within a second) and adds their recent counts. Pages of the client list come
from `clientlist.ClientList`.

The push channel (`/admin/ws`), server to dashboard:

    snapshot {closed, stats, summary, now}   on connect (stats with the 15-minute series;
             now: the server's clock, for the page's "last frame ... ago")
    page     {seq, ids, rows, matched, position, next, prev, totals, sort, order, limit}
             the dashboard's view: the ids in view in order, and only the rows
             that changed since the last page of the same `seq` (all of them in
             the first); at once after a `view`, then once a second, and early
             when a connection in view closes here
    tick     {stats, point, closed, summary, now}   once a second: the totals, the
             charts' newest point, the connections closed since the last tick
             (newest first, at most CLOSED_PUSH), the small tables
    audit    {entry}                    an entry this node recorded
    error    {seq, message}             a `view` that cannot be taken (the last one stands)

dashboard to server:

    view {seq, query}   the query takes the API's arguments (q, user, room, remote,
                        node, health, cause, sort, order, limit, cursor)

What one open dashboard costs a node: one tick a second, whose page is a binary
search into an index kept while nothing changed (see clientlist.py), plus the
JSON of the rows in view that changed; no message per connection that opens or
closes, whatever the rate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any, Protocol

from tornado.iostream import StreamBufferFullError
from tornado.websocket import WebSocketClosedError

from ..core.registry import TERMINATION_REASONS, Connection, Registry
from ..ops.stats import Closed, ClosedLog, RecentCounts, Samples
from ..storage.base import AuditEntry
from .audit import audit_json
from .clientlist import TOP, BadQuery, ClientList, Page, Query, parse_query

log = logging.getLogger("imserver.admin")

# The API and every open dashboard share one read of the other nodes' rows this young.
SHARED_READ_SECONDS = 0.9
RECENT_SECONDS = 300  # "the last minutes" of the terminations and reconnects tables
CLOSED_PUSH = 50  # closed connections a snapshot or a tick carries at most (the page shows as many)
EARLY_PAGE_SECONDS = 0.1  # a closed connection in view is shown gone this soon
DASHBOARD_TOP = 5  # rows of each small table the push channel sends (the API's default: 10)
DASHBOARD_PAGE = 25  # rows of the view a new push channel shows (the page's PAGE_SIZE)
MAX_VIEW_BYTES = 16 * 1024  # a dashboard's `view` message


class ClusterDirectory(Protocol):
    """The other nodes' connections, when this node is one of a cluster
    (cluster/directory.py's Directory)."""

    node_id: str

    async def others(self, max_age: float = 0.0) -> list[dict[str, Any]]:
        """The other nodes' rows (client_json's fields, the live ones None, and `node`);
        the same list while none changed."""

    def others_recent(self) -> dict[str, dict[str, Any]]:
        """The other nodes' recent counts, node -> {"terminations", "reconnects"}."""

    async def locate_user(self, user_id: str) -> dict[str, int]:
        """The other nodes holding connections of the user, with how many."""

    async def locate_conn(self, conn_id: str) -> str | None:
        """The other node holding the connection, if any."""

    def kick(self, reason: str, *, user: str | None = None, conn: str | None = None) -> None:
        """Tell the other nodes to close the user's connections, or one connection."""


class Subscriber:
    """One dashboard's view of the client list: its query, and the rows of its last
    page it was sent, so that the next page carries only what changed."""

    def __init__(self) -> None:
        self.query = Query(limit=DASHBOARD_PAGE)  # the newest connections
        self.seq = 0  # the dashboard's number for its current view
        self.sent: dict[str, dict[str, Any]] = {}  # conn id -> the row as last sent

    def take(self, raw: str | bytes) -> str | None:
        """A message from the dashboard: None when taken (a new view), else the error
        to answer. The last good view stands."""
        if len(raw) > MAX_VIEW_BYTES:
            return "message too large"
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            return "not JSON"
        if not isinstance(message, dict) or message.get("type") != "view":
            return "expected {\"type\": \"view\", \"seq\", \"query\"}"
        seq, query = message.get("seq"), message.get("query", {})
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 1 << 53:
            return "seq must be a whole number"
        if not isinstance(query, dict) or not all(isinstance(v, str) for v in query.values()):
            return "query must be an object of text arguments"
        try:
            self.query = parse_query(query)
        except BadQuery as exc:
            return str(exc)
        self.seq = seq
        self.sent = {}
        return None

    def message(self, page: Page) -> dict[str, Any]:
        """The `page` message for this dashboard: the ids in view and the rows changed."""
        changed = []
        sent = {}
        for row in page.rows:
            before = self.sent.get(row["id"])
            if before != row:
                changed.append(row)
            sent[row["id"]] = row
        self.sent = sent
        answer = page.to_json()
        del answer["clients"]
        return {"type": "page", "seq": self.seq, "ids": [row["id"] for row in page.rows],
                "rows": changed, **answer}


class Dashboard(Protocol):
    """An open push channel (http/admin.py's AdminSocket)."""

    subscriber: Subscriber
    session: str | None  # the admin session it was opened with (None: a Bearer token)

    def write_message(self, message: str) -> Any:
        """Queue a text message (raises when closed or past its buffer)."""

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the channel."""


class AdminView:
    """Builds what the API and the push channel send, and pushes it. With `cluster`,
    the clients and the totals are the whole cluster's: this node's rows live, the
    others' from the directory."""

    def __init__(self, registry: Registry, samples: Samples, *, ping_timeout: float,
                 started_at: float, cluster: ClusterDirectory | None = None,
                 closed_log: ClosedLog | None = None) -> None:
        self.registry = registry
        self.samples = samples
        self.started_at = started_at
        self.cluster = cluster
        self.closed_log = closed_log or ClosedLog()
        self.listing = ClientList(registry, ping_timeout=ping_timeout,
                                  node=None if cluster is None else cluster.node_id)
        self.terminations = RecentCounts(RECENT_SECONDS)  # by reason, this node's
        self.reconnects = RecentCounts(RECENT_SECONDS)  # by cause, this node's
        self.dashboards: set[Dashboard] = set()
        self._fresh_closed: deque[Closed] = deque(maxlen=CLOSED_PUSH)  # since the last tick
        self._ticking: asyncio.Future[None] | None = None
        self._early: set[Dashboard] = set()  # dashboards whose next page comes early
        self._pages: set[asyncio.Future[None]] = set()  # pages being sent out of a tick
        self._read_failed = False
        registry.on_open.append(self.opened)
        registry.on_close.append(self.closed_one)
        samples.on_add.append(self.tick)

    # --- what is shown ---

    async def others(self) -> list[dict[str, Any]] | None:
        """The other nodes' rows (None when not in a cluster, or when the directory
        cannot be read: logged once until it can)."""
        if self.cluster is None:
            return None
        try:
            rows = await self.cluster.others(SHARED_READ_SECONDS)
        except Exception as exc:
            if not self._read_failed:
                self._read_failed = True
                log.warning("admin: the other nodes' connections cannot be read (%r); "
                            "showing this node's (logged once)", exc)
            return None
        self._read_failed = False
        return rows

    async def page(self, query: Query) -> Page:
        """A page of the cluster's clients."""
        return self.listing.page(query, await self.others())

    def closed(self) -> list[dict[str, Any]]:
        return [entry.to_json() for entry in self.closed_log.entries()]

    def recent(self) -> dict[str, dict[str, int]]:
        """This node's terminations by reason and reconnects by cause over the last
        minutes (the directory writes them for the other nodes)."""
        return {"terminations": self.terminations.counts(), "reconnects": self.reconnects.counts()}

    def cluster_recent(self) -> dict[str, dict[str, int]]:
        """The same, summed over the cluster (the others' as last read)."""
        found = self.recent()
        if self.cluster is not None:
            for counts in self.cluster.others_recent().values():
                for part in ("terminations", "reconnects"):
                    mine = found[part]
                    for kind, n in counts.get(part, {}).items():
                        mine[kind] = mine.get(kind, 0) + n
        return {part: dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
                for part, counts in found.items()}

    def stats(self, others: list[dict[str, Any]] | None = None, *, series: bool = True) -> dict[str, Any]:
        """The totals of the cluster (connections, users, rooms from every node's rows;
        terminations and reconnects over 5 minutes summed over the nodes; the message
        rate this node's)."""
        totals = self.listing.totals(others)
        recent = self.cluster_recent()
        stats: dict[str, Any] = {
            "connections": totals["connections"], "users": totals["users"], "rooms": totals["rooms"],
            "terminations_5m": sum(recent["terminations"].values()),
            "reconnects_5m": sum(recent["reconnects"].values()),
            "messages_per_second": round(self.samples.rate("messages"), 2),
            "uptime": round(time.time() - self.started_at, 1),
        }
        if series:
            stats["series"] = self.samples.series()
        if self.cluster is not None:
            stats["node"] = self.cluster.node_id
            stats["nodes"] = totals["nodes"]
        return stats

    async def cluster_stats(self, *, series: bool = True) -> dict[str, Any]:
        return self.stats(await self.others(), series=series)

    def summary(self, others: list[dict[str, Any]] | None = None, *, top: int = TOP) -> dict[str, Any]:
        """The small tables: top users, rooms by members, connections by node, and
        terminations by reason and reconnects by cause over RECENT_SECONDS."""
        recent = self.cluster_recent()
        return {**self.listing.summary(others, top=top), **recent, "window": RECENT_SECONDS}

    async def cluster_summary(self, *, top: int = TOP) -> dict[str, Any]:
        return self.summary(await self.others(), top=top)

    # --- following the registry ---

    def opened(self, conn: Connection) -> None:
        if conn.reconnect:
            self.reconnects.add(conn.cause or "other")

    def closed_one(self, conn: Connection) -> None:
        entry = self.closed_log.add(conn)
        if entry.reason in TERMINATION_REASONS:
            self.terminations.add(entry.reason)
        if self.dashboards:
            self._fresh_closed.appendleft(entry)
            for dashboard in self.dashboards:
                if conn.id in dashboard.subscriber.sent:
                    self._page_early(dashboard)

    def audited(self, entry: AuditEntry) -> None:
        """An operator action kept in the audit log (by this node)."""
        self.push({"type": "audit", "entry": audit_json(entry)})

    # --- pushing ---

    def push(self, event: dict[str, Any], dashboards: set[Dashboard] | None = None) -> None:
        targets = self.dashboards if dashboards is None else dashboards
        if not targets:
            return
        text = json.dumps(event, separators=(",", ":"))
        for dashboard in list(targets):
            self._send(dashboard, text)

    def _send(self, dashboard: Dashboard, text: str) -> None:
        try:
            dashboard.write_message(text)
        except (WebSocketClosedError, StreamBufferFullError):
            # closed, or a dashboard that stopped reading: drop it, it reconnects
            self.gone(dashboard)
            dashboard.close()

    async def open(self, dashboard: Dashboard) -> bool:
        """A new push channel: its snapshot and first page (the default view) go out;
        False when it went away meanwhile."""
        others = await self.others()
        self.dashboards.add(dashboard)
        snapshot = {"type": "snapshot", "closed": self.closed()[:CLOSED_PUSH],
                    "stats": self.stats(others), "summary": self.summary(others, top=DASHBOARD_TOP),
                    "now": round(time.time(), 3)}
        self.push(snapshot, {dashboard})
        self._send_page(dashboard, others)
        return dashboard in self.dashboards

    def gone(self, dashboard: Dashboard) -> None:
        self.dashboards.discard(dashboard)
        self._early.discard(dashboard)

    def viewed(self, dashboard: Dashboard, raw: str | bytes) -> None:
        """A message from a dashboard: a new view is answered with its page at once."""
        error = dashboard.subscriber.take(raw)
        if error is not None:
            self.push({"type": "error", "seq": dashboard.subscriber.seq, "message": error}, {dashboard})
            return
        self._page_soon(dashboard)

    def _page_soon(self, dashboard: Dashboard, stale_ok: float = 0.0) -> None:
        task = asyncio.ensure_future(self._page_now(dashboard, stale_ok))
        self._pages.add(task)
        task.add_done_callback(self._pages.discard)

    async def _page_now(self, dashboard: Dashboard, stale_ok: float = 0.0) -> None:
        others = await self.others()
        if dashboard in self.dashboards:
            self._send_page(dashboard, others, stale_ok)

    def _send_page(self, dashboard: Dashboard, others: list[dict[str, Any]] | None,
                   stale_ok: float = 0.0) -> None:
        subscriber = dashboard.subscriber
        page = self.listing.page(subscriber.query, others, idle=False, stale_ok=stale_ok)
        self.push(subscriber.message(page), {dashboard})

    def _page_early(self, dashboard: Dashboard) -> None:
        if dashboard in self._early:
            return
        self._early.add(dashboard)

        def send() -> None:
            if dashboard in self._early:
                self._early.discard(dashboard)
                # The tick's index, less the rows that closed: in a storm of closes in
                # view this costs no sort.
                self._page_soon(dashboard, stale_ok=1.0)

        asyncio.get_running_loop().call_later(EARLY_PAGE_SECONDS, send)

    def tick(self) -> None:
        """Once a second: the totals, the charts' newest point, the closed connections
        and the small tables to every dashboard, and each its page."""
        if self.dashboards and self._ticking is None:  # one at a time, whatever the dashboards
            self._ticking = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        try:
            point = self.samples.newest_point()
            others = await self.others()
            closed = [entry.to_json() for entry in self._fresh_closed]
            self._fresh_closed.clear()
            self.push({"type": "tick", "stats": self.stats(others, series=False), "point": point,
                       "closed": closed, "summary": self.summary(others, top=DASHBOARD_TOP),
                       "now": round(time.time(), 3)})
            for dashboard in list(self.dashboards):
                self._early.discard(dashboard)
                self._send_page(dashboard, others)
        finally:
            self._ticking = None

    def end_session(self, session: str) -> None:
        """Close the push channels opened with a session that logged out."""
        for dashboard in list(self.dashboards):
            if dashboard.session == session:
                dashboard.close(4001, "logged out")

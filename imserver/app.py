"""The app factory: builds the whole server from a Config."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any

import tornado.web
from prometheus_client import CollectorRegistry
from tornado.ioloop import PeriodicCallback

from .cluster.directory import Directory
from .cluster.node import ClusterLink, new_node_id
from .config import Config
from .core.errors import ConfigError
from .core.hub import Hub
from .core.ratelimit import KeyedLimiter
from .core.registry import TERMINATION_REASONS, Connection, Registry
from .http.access import AppGate, JoinHook
from .http.admin import AdminAuth, AdminDeps, admin_routes
from .http.adminview import AdminView
from .http.api import ApiDeps, api_routes
from .http.audit import Audit
from .http.auth import Authenticator, load_or_create_secret
from .http.bans import BAN, LIFT, Bans
from .http.chat import ChatDeps, ChatSocket
from .http.echo import EchoSocket
from .http.edge import connection_limit
from .http.identity import Identities
from .http.moderation import moderation_routes
from .http.security import SecurityHeaders
from .http.web import (
    ClientConfigHandler,
    HealthHandler,
    LoginHandler,
    LogoutHandler,
    MeHandler,
    MetricsHandler,
    RevalidatedStaticHandler,
)
from .ops.heartbeat import Heartbeat
from .ops.metrics import Metrics
from .ops.stats import ClosedLog, Sample, Samples
from .storage import open_store
from .storage.private import secure_data_files
from .transport.fanout import fan_out
from .transport.sendpool import SendPool, spare_cores
from .transport.writer import CoalescingWriter

log = logging.getLogger("imserver")

# The pages, inside the package wherever it is installed (in a checkout, links to
# the top-level static/ and dashboard/).
PAGES = Path(str(resources.files("imserver") / "_pages"))
STATIC_DIR = PAGES / "static"
DASHBOARD_DIR = PAGES / "dashboard"


class Runtime:
    """Everything one running server is made of, wired together, and its timers.

    Only make_app and the command line use it: make_app hands each handler the
    parts it uses (ChatDeps, AdminDeps, ...), and the parts follow each other
    through the registry's listeners and the hub's deliver callable."""

    def __init__(self, config: Config, metrics_registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics = Metrics(metrics_registry, cluster=config.broker.backend != "local")
        self.registry = Registry()
        self.max_connections = connection_limit(config.limits)
        secure_data_files(config)
        secret = config.auth.secret or load_or_create_secret(config.data_path)
        self.secret = secret
        self.auth = Authenticator(config.auth, secret)
        self.store = open_store(config)
        self.identities = Identities(self.auth, self.store, self.registry)
        # The recently closed connections, with what the operators said closing them.
        self.closed_log = ClosedLog()
        self.bans = Bans(self.store, self.registry)
        self.audit = Audit(self.store)
        self.opened = False
        # Helpers beyond the spare cores would only take turns with the loop's thread.
        self.send_pool = SendPool(min(config.server.send_threads, spare_cores()))
        self.writer = CoalescingWriter(self.send_pool)
        self.cluster = _cluster_link(config, self.registry, self.metrics)
        self._background: set[asyncio.Future[Any]] = set()
        hook = JoinHook(config.auth.join_hook) if config.auth.join_hook.url else None
        self.hub = Hub(self.store, self.registry, config.limits, self.metrics,
                       functools.partial(fan_out, self.writer), resolve=self.identities.resolve,
                       broker=self.cluster, gate=AppGate(self.identities, hook))
        if self.cluster is not None:
            self.cluster.attach(self.hub)
            self._share_identities(self.cluster)
            self._share_bans(self.cluster)
        # In a cluster: every node's connections, and each user's count over the nodes.
        self.directory = Directory(self.cluster) \
            if self.cluster is not None else None
        hb = config.heartbeat
        self.heartbeat = Heartbeat(interval=hb.ping_interval, timeout=hb.ping_timeout,
                                   client_interval=hb.client_interval,
                                   send_ping=lambda conn, payload: conn.transport.send_ping(payload),
                                   observe_sweep=self.metrics.heartbeat_sweep.observe)
        self.registry.on_open.append(self.heartbeat.watch)
        self.registry.on_close.append(self.heartbeat.forget)
        self.registry.on_renew.append(self.heartbeat.recheck)
        self._retention = PeriodicCallback(self.apply_retention,
                                           config.storage.retention_interval_seconds * 1000)
        per_minute = config.limits.login_attempts_per_minute
        self.login_limiter = KeyedLimiter(rate=per_minute / 60, burst=per_minute)
        # Wrong admin or metrics tokens, per address; past it even the right one gets 429.
        self.auth_failures = KeyedLimiter(rate=per_minute / 60, burst=per_minute)
        self.admin_auth = AdminAuth(config.admin.token, secret,
                                    operators={o.name: o.token for o in config.admin.operators})
        self.samples = Samples()
        self._sampler = PeriodicCallback(self.sample, 1000)
        self.registry.on_open.append(self._opened)
        self.registry.on_close.append(self._closed)
        self.started = False
        self.started_at = time.time()
        self.admin_view = AdminView(self.registry, self.samples, ping_timeout=hb.ping_timeout,
                                    started_at=self.started_at, cluster=self.directory,
                                    closed_log=self.closed_log)
        self.audit.on_record.append(self.admin_view.audited)
        if self.directory is not None:  # the other nodes' dashboards add up this node's
            self.directory.recent = self.admin_view.recent

    async def local_presence(self, room: str) -> dict[str, str]:
        """Who is in a room on this one server: user id -> display name."""
        found = self.hub.rooms.get(room)
        return found.everyone() if found is not None else {}

    def _share_identities(self, cluster: ClusterLink) -> None:
        """Guest logins and logouts reach the other nodes at once; after this node could
        not hear them for a while, it reads the identities again."""
        identities = self.identities
        identities.publish = cluster.publish_control
        cluster.handlers["claim"] = identities.remote_claim
        cluster.handlers["revoke"] = identities.remote_revoke

        def reload() -> None:
            task = asyncio.ensure_future(identities.reload())
            self._background.add(task)
            task.add_done_callback(self._background_done)

        cluster.on_resync_hooks.append(reload)

    def _share_bans(self, cluster: ClusterLink) -> None:
        """Bans and lifts reach the other nodes at once; after this node could not hear
        them for a while, it reads the bans again."""
        bans = self.bans
        bans.publish = cluster.publish_control
        cluster.handlers[BAN] = bans.remote_ban
        cluster.handlers[LIFT] = bans.remote_lift

        def reload() -> None:
            task = asyncio.ensure_future(bans.reload())
            self._background.add(task)
            task.add_done_callback(self._background_done)

        cluster.on_resync_hooks.append(reload)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("reading the identities or the bans again failed: %r", task.exception())

    async def open(self) -> None:
        """Make the store ready (for PostgreSQL: connect and migrate), read back the
        guest identities it keeps, and in a cluster join the others (from now on this
        node hears their logins); before serving. Idempotent."""
        if self.opened:
            return
        self.identities.load(await self.store.open(time.time()))
        self.bans.load(await self.store.read_bans(time.time()))
        if self.store.shared:  # bans made on nodes this one may not hear
            self.bans.start_rereading()
        if self.cluster is not None:
            self.cluster.start()
        if self.directory is not None:
            self.directory.start()
        self.opened = True

    def health(self) -> str | None:
        """Why this node cannot be trusted to keep and deliver messages now (for
        /healthz), or None: the store's problem, else the broker's."""
        problem = self.store.health()
        if problem is None and self.cluster is not None:
            problem = self.cluster.health()
        return problem

    def start(self) -> None:
        """Start the timers (on the running loop); idempotent."""
        if self.started:
            return
        self.started = True
        self.heartbeat.start()
        self._retention.start()
        self._sampler.start()
        self.apply_retention()
        self.sample()
        if self.admin_auth.generated:
            log.warning("admin token (generated at start, set admin.token to choose one): %s",
                        self.admin_auth.token)

    async def close(self) -> None:
        """Stop the timers, drop what is still connected, flush and close the store."""
        self.heartbeat.stop()
        self._retention.stop()
        self._sampler.stop()
        self.bans.stop()
        for conn in self.registry:
            conn.terminate("shutdown")
        if self.directory is not None:
            await self.directory.close()
        if self.cluster is not None:
            await self.cluster.close()
        self.send_pool.close()
        await self.store.close()

    def apply_retention(self) -> None:
        s = self.config.storage
        future = self.store.prune(max_age_seconds=s.max_age_days * 86400 or None,
                                  keep_per_room=s.max_messages_per_room or None)

        def done(f: object) -> None:
            if future.exception() is None and future.result():
                log.info("retention removed %d messages", future.result())

        future.add_done_callback(done)
        self.identities.prune()

    def sample(self) -> None:
        """Once a second: a sample for the dashboard's totals and charts."""
        m = self.metrics
        # The chart's connections are the cluster's (the others' as of the directory's
        # last refresh); its messages are this node's.
        connections = len(self.registry) if self.directory is None else self.directory.connections()
        self.samples.add(Sample(
            t=time.time(), connections=connections, users=self.registry.users_online(),
            rooms=len(self.hub.rooms), messages=m.frames.received["say"] + m.frames.received["dm"],
            terminations=m.total(m.terminations), reconnects=m.total(m.reconnects)))

    def refresh_gauges(self) -> None:
        self.metrics.connections.set(len(self.registry))
        self.metrics.users_online.set(self.registry.users_online())
        self.metrics.rooms.set(len(self.hub.rooms))

    def _opened(self, conn: Connection) -> None:
        self.metrics.opened.inc()
        self.refresh_gauges()

    def _closed(self, conn: Connection) -> None:
        reason = conn.close_reason or "client_close"
        self.metrics.closed.labels(reason).inc()
        if reason in TERMINATION_REASONS:
            self.metrics.terminations.labels(reason).inc()
        self.refresh_gauges()


def _cluster_link(config: Config, registry: Registry, metrics: Metrics) -> ClusterLink | None:
    """This node's link to the others of its cluster (broker.backend: redis), or None."""
    broker = config.broker
    if broker.backend == "local":
        return None
    try:
        from .cluster.redisbus import RedisBus
    except ImportError as exc:
        raise ConfigError(f"broker.backend redis needs the {exc.name or 'redis'} package: "
                          "pip install 'imserver[cluster]'") from None
    node_id = broker.node_id or new_node_id()

    def bus(link: ClusterLink) -> RedisBus:
        return RedisBus(broker.url, broker.prefix, node_id, link, metrics,
                        liveness_interval=broker.liveness_interval_seconds,
                        liveness_timeout=3 * broker.liveness_interval_seconds,
                        outbox_limit=broker.outbox_limit)

    return ClusterLink(bus, registry, node_id=node_id, prefix=broker.prefix,
                       lease_seconds=broker.lease_seconds,
                       observe_lag=metrics.broker_lag.observe)


access_log = logging.getLogger("tornado.access")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log, without query strings: /ws?token=... holds a credential."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, request.path,
                   request.remote_ip, 1000.0 * request.request_time())


class ImServerApp(tornado.web.Application):
    """The Tornado application, with the Runtime it serves."""

    runtime: Runtime


def make_app(config: Config, *, registry: CollectorRegistry | None = None,
             prebuilt: bool = True) -> ImServerApp:
    """Build the whole application from a config; `registry` receives the metrics.
    `await app.runtime.open()` before serving: it opens the store.
    `prebuilt=False` sends with Tornado's `write_message` per frame and receiver
    instead of frames built once: the naive baseline of the benchmarks."""
    rt = Runtime(config, registry)
    chat = {"deps": ChatDeps(
        config=config, auth=rt.auth, identities=rt.identities, registry=rt.registry, hub=rt.hub,
        heartbeat=rt.heartbeat, metrics=rt.metrics, store=rt.store, writer=rt.writer,
        max_connections=rt.max_connections, start=rt.start, prebuilt=prebuilt,
        user_slots=rt.directory, bans=rt.bans)}
    session = {"auth": rt.auth, "settings": config.auth, "identities": rt.identities}
    admin = AdminDeps(auth=rt.admin_auth, failures=rt.auth_failures, view=rt.admin_view,
                      registry=rt.registry, resolve=rt.identities.resolve, metrics=rt.metrics,
                      cookie_secure=config.auth.cookie_secure, bans=rt.bans, audit=rt.audit,
                      store=rt.store, delete_message=rt.hub.operator_delete,
                      api_key=config.api.key)
    routes: list[Any] = [
        (r"/ws", ChatSocket, chat),
        (r"/api/login", LoginHandler, {**session, "limiter": rt.login_limiter,
                                       "metrics": rt.metrics, "bans": rt.bans}),
        (r"/api/logout", LogoutHandler, session),
        (r"/api/me", MeHandler, session),
        (r"/api/client-config", ClientConfigHandler,
         {"client": config.client, "max_text_chars": config.limits.max_text_chars}),
        (r"/healthz", HealthHandler, {"health": rt.health, "registry": rt.registry}),
        (r"/()", RevalidatedStaticHandler,
         {"path": str(STATIC_DIR), "default_filename": "index.html"}),
        (r"/static/(.*)", RevalidatedStaticHandler, {"path": str(STATIC_DIR)}),
    ]
    routes += admin_routes(admin, str(DASHBOARD_DIR)) + moderation_routes(admin)
    routes += api_routes(ApiDeps(
        key=config.api.key, failures=rt.auth_failures, hub=rt.hub, store=rt.store,
        max_text_chars=config.limits.max_text_chars, history_page=config.limits.history_page,
        presence=rt.cluster.room_members if rt.cluster is not None else rt.local_presence), admin)
    if config.metrics.enabled:
        routes.append((r"/metrics", MetricsHandler, {
            "metrics": rt.metrics, "token": config.metrics.token, "failures": rt.auth_failures,
            "refresh": rt.refresh_gauges}))
    if config.server.echo_endpoint:
        routes.append((r"/echo", EchoSocket, chat))
    app = ImServerApp(
        routes,
        cookie_secret=rt.secret,
        websocket_max_message_size=config.limits.max_frame_bytes,
        xsrf_cookies=False,
        log_function=log_request,
    )
    app.add_transform(SecurityHeaders)
    app.runtime = rt
    return app

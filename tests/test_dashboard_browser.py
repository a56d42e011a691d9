"""The admin dashboard in a real Chromium, against a real server process.

The operator logs in, sees the clients the test connected, sees one appear and
one go without reloading, filters and sorts, disconnects one with a reason (and
that client gets close code 4003 with the reason), and logs out. On success a
screenshot of the populated dashboard is saved for the README. Moderation: a
mute and its lift, a message deleted from a room's list, each in the audit log.
The page has no serious or critical axe-core violation in the light or the dark
theme, and on a phone no table scrolls sideways.

Sync Playwright only (no gen_test here, see /work/shared/TESTING.md). The chat
clients are plain WebSocket clients on a private asyncio loop in a thread, plus
one raw socket that never answers pings, to show an amber health mark.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from imserver.testing import ServerProcess, login
from tests.axe import severe_violations
from tests.browser import checked_page, launch_chromium, screenshot_path

pytestmark = pytest.mark.browser

TOKEN = "dashboard-test-admin-token"
# The page must show a change "within a second"; the push event itself takes
# milliseconds, the rest is slack for a loaded CI machine.
LIVE_UPDATE = 1_500  # ms
# ping_timeout 10: the silent client turns amber after 5 s without a frame
# (half the timeout) and is only dropped after 10 s, a wide window to see it.
SETTINGS: dict[str, Any] = {
    "admin": {"token": TOKEN},
    "heartbeat": {"ping_interval": 0.5, "ping_timeout": 10.0},
}

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/18.1 Safari/605.1.15")
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Mobile Safari/537.36")
EDGE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0")
# Server text must reach the page as text: this would run if it went in as HTML.
# Messages said per quarter second by the chatter: 4 to 32 per second.
CHATTER_PATTERN = (1, 2, 3, 5, 6, 8, 6, 4, 3, 2, 2, 3, 5, 7, 4, 2)
HOSTILE_AGENT = '<img src=x onerror="window.__xss = 1">Mozilla/5.0 (Windows NT 10.0; Win64; x64)'


class ChatClient:
    """One chat connection, driven from the test thread."""

    def __init__(self, pool: ChatClients, name: str) -> None:
        self.pool = pool
        self.name = name
        self.ws: WebSocketClientConnection | None = None
        self.frames: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.closed = threading.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None

    def on_message(self, message: str | bytes | None) -> None:  # on the clients' loop
        with self.changed:
            if message is None:
                assert self.ws is not None
                self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason
                self.closed.set()
            elif isinstance(message, str) and message != "pong":
                self.frames.append(json.loads(message))
            self.changed.notify_all()

    def wait_for(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The first frame of type `kind` (and these field values), waiting for it."""
        def found() -> dict[str, Any] | None:
            return next((f for f in self.frames if f.get("type") == kind
                         and all(f.get(k) == v for k, v in fields.items())), None)

        with self.changed:
            assert self.changed.wait_for(lambda: found() is not None or self.closed.is_set(), timeout), (
                f"{self.name}: no {kind} frame within {timeout} s")
            frame = found()
        assert frame is not None, f"{self.name}: closed ({self.close_code}) before a {kind} frame"
        return frame

    @property
    def conn_id(self) -> str:
        return str(self.wait_for("welcome")["conn"])

    @property
    def user_id(self) -> str:
        return str(self.wait_for("welcome")["user"]["id"])

    def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        self.pool.call(self.ws.write_message, json.dumps(frame))

    def close(self, code: int = 1000, reason: str = "") -> None:
        assert self.ws is not None
        self.pool.call(self.ws.close, code, reason)

    def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        assert self.closed.wait(timeout), f"{self.name} is still connected after {timeout} s"
        return self.close_code, self.close_reason


class ChatClients:
    """Chat clients on a private asyncio loop in a background thread."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.clients: list[ChatClient] = []
        self.tokens: dict[str, str] = {}  # name -> its last token: a second login is the same user
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chat-clients", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def connect(self, name: str, *, rooms: tuple[str, ...] = (), user_agent: str = FIREFOX,
                reconnect: int = 0) -> ChatClient:
        """Logs in, connects, waits for the welcome and for each room's `joined`."""
        client = ChatClient(self, name)
        query = f"&reconnect={reconnect}&cause=network" if reconnect else ""
        self.tokens[name] = login(self.host, name, token=self.tokens.get(name))
        request = HTTPRequest(f"ws://{self.host}/ws?token={self.tokens[name]}{query}",
                              user_agent=user_agent)

        async def open_it() -> WebSocketClientConnection:
            return await websocket_connect(request, on_message_callback=client.on_message)

        client.ws = asyncio.run_coroutine_threadsafe(open_it(), self.loop).result(10)
        self.clients.append(client)
        client.wait_for("welcome")
        for room in rooms:
            client.send({"type": "join", "room": room})
        for room in rooms:
            client.wait_for("joined", room=room)
        return client

    def chatter(self, speakers: list[tuple[ChatClient, str]]) -> None:
        """Keeps `speakers` (client, room) saying things at a varying rate, for the charts.

        The list may grow while it runs; closed clients are skipped.
        """
        async def talk() -> None:
            for i in itertools.count():
                live = [(c, room) for c, room in speakers if not c.closed.is_set()]
                for n in range(CHATTER_PATTERN[i % len(CHATTER_PATTERN)]):
                    if live:
                        client, room = live[(i + n) % len(live)]
                        frame = {"type": "say", "room": room, "text": f"message {i}.{n}"}
                        assert client.ws is not None
                        client.ws.write_message(json.dumps(frame))
                await asyncio.sleep(0.25)

        asyncio.run_coroutine_threadsafe(talk(), self.loop)

    def shutdown(self) -> None:
        """Closes every client (waiting for the close handshakes), then the loop."""
        async def close_all() -> None:
            for client in self.clients:
                if client.ws is not None:
                    client.ws.close()  # also after a server close: it releases the connection
            for _ in range(100):
                if all(c.closed.is_set() for c in self.clients):
                    break
                await asyncio.sleep(0.02)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


class SilentClient:
    """A raw-socket chat client that joins a room and then never reads nor answers a ping."""

    def __init__(self, host: str, name: str, room: str, user_agent: str) -> None:
        hostname, port = host.split(":")
        self.sock = socket.create_connection((hostname, int(port)), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /ws?token={login(host, name)} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"User-Agent: {user_agent}\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the upgrade"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response
        self.sock.sendall(self.text_frame(json.dumps({"type": "join", "room": room})))

    @staticmethod
    def text_frame(text: str) -> bytes:
        """One masked text frame (client to server frames must be masked)."""
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
            b ^ mask[i % 4] for i, b in enumerate(payload))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, SETTINGS).start()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output(), proc.output()


@pytest.fixture
def chat(server: ServerProcess) -> Iterator[ChatClients]:
    pool = ChatClients(server.host)
    yield pool
    pool.shutdown()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # 5 s for the page's waits: expect() waits 5 s by default too.
    with checked_page(browser, viewport={"width": 1280, "height": 800}, color_scheme="light") as page:
        yield page


def rows(page: Page, testid: str = "client-row") -> Locator:
    return page.get_by_test_id(testid)


def row_of(page: Page, conn_id: str, testid: str = "client-row") -> Locator:
    return page.locator(f'[data-testid="{testid}"][data-conn-id="{conn_id}"]')


def users_shown(page: Page) -> list[str]:
    users: list[str] = page.eval_on_selector_all(
        '[data-testid="client-row"]', "rows => rows.map(r => r.dataset.name)")
    return users


def expect_users(page: Page, names: list[str], timeout: float = 5_000) -> None:
    """Wait until the table shows these users, in this order (the server sorts and pages)."""
    page.wait_for_function(
        "names => [...document.querySelectorAll('[data-testid=\"client-row\"]')]"
        ".map(r => r.dataset.name).join('\\n') === names.join('\\n')", arg=names, timeout=timeout)


def log_in(page: Page, token: str = TOKEN) -> None:
    page.get_by_test_id("admin-token").fill(token)
    page.get_by_test_id("admin-login").click()


def test_operator_watches_clients_live_and_disconnects_one(server: ServerProcess, chat: ChatClients,
                                                           page: Page, tmp_path: Path) -> None:
    alice = chat.connect("alice", rooms=("general", "random"), user_agent=FIREFOX)
    bob = chat.connect("bob", rooms=("general",), user_agent=SAFARI)
    carol = chat.connect("carol", rooms=("support",), user_agent=HOSTILE_AGENT)
    speakers = [(alice, "general")]
    chat.chatter(speakers)

    # Access: a wrong token is refused, the right one opens the dashboard.
    page.goto(f"http://{server.host}/admin")
    expect(page.get_by_test_id("admin-token")).to_be_visible()
    log_in(page, "not-the-token")
    expect(page.get_by_test_id("admin-error")).to_have_text("Wrong admin token.")
    log_in(page)
    expect(page.get_by_test_id("push-state")).to_have_attribute("data-state", "open")
    assert "imserver_admin" not in page.evaluate("document.cookie"), "the session cookie must be HttpOnly"
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # The three clients, with what the server knows of them.
    expect(rows(page)).to_have_count(3)
    assert sorted(users_shown(page)) == ["alice", "bob", "carol"]
    for client in (alice, bob, carol):
        expect(row_of(page, client.conn_id)).to_have_attribute("data-name", client.name)
        expect(row_of(page, client.conn_id)).to_have_attribute("data-user", client.user_id)
        expect(row_of(page, client.conn_id).locator('[data-col="user"] .main')).to_have_text(client.name)
    alice_row = row_of(page, alice.conn_id)
    expect(alice_row.locator('[data-col="rooms"]')).to_have_text("general, random")
    expect(alice_row.locator('[data-col="remote"]')).to_have_text("127.0.0.1")
    expect(alice_row.locator('[data-col="health"]')).to_have_text("OK")
    expect(alice_row.locator('[data-col="rtt"]')).to_have_text(re.compile(r"^[\d.]+ ms$"))
    expect(row_of(page, carol.conn_id).locator('[data-col="user_agent"]')).to_have_text(HOSTILE_AGENT)
    assert page.evaluate("window.__xss") is None
    expect(page.get_by_test_id("total-connections")).to_have_text("3")
    expect(page.get_by_test_id("total-users")).to_have_text("3")
    expect(page.get_by_test_id("total-rooms")).to_have_text("3")

    # A fourth client appears without a reload: one that never answers a ping.
    dave = SilentClient(server.host, "dave", "general", CHROME_ANDROID)
    try:
        expect(rows(page)).to_have_count(4, timeout=LIVE_UPDATE)
        expect(page.locator('[data-testid="client-row"][data-name="dave"]')).to_be_visible()
        expect(page.get_by_test_id("total-connections")).to_have_text("4", timeout=LIVE_UPDATE)

        # One leaves by itself: its row goes, a closed row says the client closed it.
        bob.close(1000, "bye")
        expect(row_of(page, bob.conn_id)).to_have_count(0, timeout=LIVE_UPDATE)
        bob_closed = row_of(page, bob.conn_id, "closed-row")
        expect(bob_closed.locator('[data-col="closed_by"]')).to_have_text("client")
        expect(bob_closed.locator('[data-col="reason"]')).to_have_text("client close")
        expect(bob_closed.locator('[data-col="code"]')).to_have_text("1000")

        # Filter by room and by user; sort by a column.
        page.get_by_test_id("filter").fill("support")
        expect(rows(page)).to_have_count(1)
        expect(row_of(page, carol.conn_id)).to_be_visible()
        page.get_by_test_id("filter").fill("ALI")
        expect(rows(page)).to_have_count(1)
        expect(row_of(page, alice.conn_id)).to_be_visible()
        page.get_by_test_id("filter").fill("")
        expect(rows(page)).to_have_count(3)
        page.get_by_role("button", name="User", exact=True).click()
        expect_users(page, ["alice", "carol", "dave"])
        page.get_by_role("button", name="User", exact=True).click()
        expect_users(page, ["dave", "carol", "alice"])

        # Disconnect carol, with a reason; nothing happens before Confirm.
        row_of(page, carol.conn_id).get_by_test_id("disconnect").click()
        expect(page.get_by_test_id("confirm")).to_be_disabled()
        page.get_by_test_id("reason-input").fill("Spamming the room")
        assert not carol.closed.is_set()
        page.get_by_test_id("confirm").click()
        assert carol.wait_closed() == (4003, "Spamming the room")
        expect(page.get_by_test_id("confirm")).to_be_hidden()
        expect(row_of(page, carol.conn_id)).to_have_count(0, timeout=LIVE_UPDATE)
        carol_closed = row_of(page, carol.conn_id, "closed-row")
        expect(carol_closed.locator('[data-col="reason"]')).to_have_text("kicked: Spamming the room")
        expect(carol_closed.locator('[data-col="code"]')).to_have_text("4003")
        expect(carol_closed.locator('[data-col="closed_by"]')).to_have_text("server")
        assert not alice.closed.is_set()
        assert page.evaluate("window.__sameDocument") is True

        # Populate the page for the README's screenshot, then take it.
        erin = chat.connect("erin", rooms=("general", "support"), user_agent=CHROME_ANDROID, reconnect=2)
        frank = chat.connect("frank", rooms=("random",), user_agent=EDGE, reconnect=1)
        grace = chat.connect("grace", rooms=("general", "design"), user_agent=SAFARI)
        alice2 = chat.connect("alice", rooms=("general",), user_agent=EDGE)
        speakers += [(erin, "support"), (frank, "random"), (grace, "design")]
        expect(rows(page)).to_have_count(6)
        expect(page.locator('[data-testid="client-row"][data-name="dave"]')).to_have_attribute(
            "data-health", "amber", timeout=8_000)
        expect(page.get_by_test_id("total-mps")).not_to_have_text("0.00")
        page.get_by_role("button", name="User", exact=True).click()
        page.mouse.move(0, 0)
        screenshot = page.screenshot()  # saved once the whole test has passed
    finally:
        dave.close()

    # "Disconnect user" closes every connection of that user.
    row_of(page, alice2.conn_id).get_by_test_id("disconnect-user").click()
    expect(page.get_by_test_id("confirm")).to_have_text("Disconnect 2 connections")
    page.get_by_test_id("reason-input").fill("Account suspended")
    page.get_by_test_id("confirm").click()
    for client in (alice, alice2):
        assert client.wait_closed() == (4003, "Account suspended")
    alice_rows = page.locator('[data-testid="client-row"][data-name="alice"]')
    expect(alice_rows).to_have_count(0, timeout=LIVE_UPDATE)

    # Logging out ends the session.
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("admin-token")).to_be_visible()
    status = page.evaluate("fetch('/admin/api/session').then(r => r.status)")
    assert status == 401

    screenshot_path("dashboard.png", tmp_path).write_bytes(screenshot)


def test_push_channel_reconnects_and_asks_for_a_new_login_after_a_restart(
        server: ServerProcess, chat: ChatClients, page: Page) -> None:
    page.goto(f"http://{server.host}/admin/")
    log_in(page)
    push_state = page.get_by_test_id("push-state")
    push_label = push_state.locator('[data-part="label"]')
    expect(push_state).to_have_attribute("data-state", "open")
    expect(push_label).to_have_text("Live")

    # The server goes away: the page says it is reconnecting, and keeps trying.
    server.stop()
    expect(push_state).to_have_attribute("data-state", re.compile("waiting|reconnecting"))
    expect(push_label).to_contain_text("Reconnecting")

    # It comes back on the same port. Admin sessions live in the server's memory,
    # so the channel's upgrade is refused and the page asks for the token again.
    server.start()
    expect(page.get_by_test_id("admin-error")).to_have_text("Your session has ended. Log in again.",
                                                           timeout=10_000)
    bob = chat.connect("bob", rooms=("general",))
    log_in(page)
    expect(push_state).to_have_attribute("data-state", "open")
    expect(row_of(page, bob.conn_id)).to_be_visible()


def admin_api(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    """The admin API with the admin token, from the test: its JSON answer."""
    request = urllib.request.Request(
        f"http://{server.host}/admin/api{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def say(client: ChatClient, room: str, text: str) -> dict[str, Any]:
    """What the server answers a say: its ack, or its error."""
    cid = os.urandom(6).hex()
    client.send({"type": "say", "room": room, "text": text, "cid": cid})

    def answer() -> dict[str, Any] | None:
        return next((f for f in client.frames if f.get("cid") == cid and f["type"] in ("ack", "error")),
                    None)

    with client.changed:
        assert client.changed.wait_for(lambda: answer() is not None, 5), f"no answer to {text!r}"
        found = answer()
    assert found is not None
    return found


def audit_actions(page: Page) -> list[str]:
    actions: list[str] = page.eval_on_selector_all(
        '[data-testid="audit-row"]', "rows => rows.map(r => r.dataset.action)")
    return actions


def test_operator_mutes_deletes_a_message_and_reads_each_action_in_the_audit_log(
        server: ServerProcess, chat: ChatClients, page: Page) -> None:
    alice = chat.connect("alice", rooms=("general",))
    bob = chat.connect("bob", rooms=("general", "random"))
    assert say(alice, "general", "hello there")["type"] == "ack"
    spam = say(alice, "general", "buy cheap pills")["id"]
    page.goto(f"http://{server.host}/admin")
    log_in(page)
    expect(page.get_by_test_id("operator")).to_have_text("Signed in as admin")
    expect(page.locator('[data-part="audit-empty"]')).to_be_visible()

    # Mute alice in general, from her row: the room is hers, the reason and the time chosen.
    row_of(page, alice.conn_id).get_by_test_id("mute-user").click()
    expect(page.get_by_test_id("room-input")).to_have_value("general")
    expect(page.get_by_test_id("confirm")).to_be_disabled()
    page.get_by_test_id("reason-input").fill("Cool down")
    page.get_by_test_id("duration-input").select_option("1h")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("confirm")).to_be_hidden()
    mute_row = page.locator(f'[data-testid="mute-row"][data-user="{alice.user_id}"]')
    expect(mute_row).to_have_attribute("data-room", "general")
    expect(mute_row).to_contain_text("Cool down")
    refused = say(alice, "general", "let me speak")
    assert refused["type"] == "error" and refused["code"] == "muted", refused
    assert say(bob, "general", "quiet now")["type"] == "ack"

    # The room's messages, newest first; delete the spam with a reason.
    page.get_by_test_id("room-messages-input").fill("general")
    page.get_by_test_id("room-messages-show").click()
    messages = page.get_by_test_id("message-row")
    expect(messages).to_have_count(3)
    expect(messages.first).to_contain_text("quiet now")
    spam_row = page.locator(f'[data-testid="message-row"][data-id="{spam}"]')
    spam_row.get_by_test_id("delete-message").click()
    expect(page.get_by_test_id("confirm")).to_have_text("Delete message")
    page.get_by_test_id("reason-input").fill("Spam")
    page.get_by_test_id("confirm").click()
    deleted = bob.wait_for("delete", target=spam)
    assert deleted["by"] == "operator"
    expect(spam_row).to_have_attribute("data-status", "deleted")
    expect(spam_row).to_contain_text("message deleted")
    expect(spam_row.get_by_test_id("delete-message")).to_be_disabled()

    # Unmute: alice speaks again.
    mute_row.get_by_test_id("lift-mute").click()
    expect(mute_row).to_have_count(0)
    assert say(alice, "general", "thank you")["type"] == "ack"

    # The audit log, newest first, live from the push channel.
    expect(page.get_by_test_id("audit-row")).to_have_count(3)
    assert audit_actions(page) == ["unmute", "delete_message", "mute"]
    newest_delete = page.locator('[data-testid="audit-row"][data-action="delete_message"]')
    expect(newest_delete).to_contain_text("admin")
    expect(newest_delete).to_contain_text("Spam")
    expect(newest_delete).to_contain_text(str(spam))
    # Read back from the store after a reload.
    page.reload()
    expect(page.get_by_test_id("audit-row")).to_have_count(3)
    assert audit_actions(page) == ["unmute", "delete_message", "mute"]


def populate_for_review(server: ServerProcess, chat: ChatClients) -> ChatClient:
    """Every kind of row the dashboard shows: clients, closed by either side with a
    reason, a ban, a mute, audit entries, messages (one deleted). Returns a client
    left connected."""
    alice = chat.connect("alice", rooms=("general", "random"), user_agent=HOSTILE_AGENT)
    bob = chat.connect("bob", rooms=("general",), user_agent=CHROME_ANDROID)
    carol = chat.connect("carol", rooms=("support",), user_agent=EDGE)
    erin = chat.connect("erin", rooms=("general",), user_agent=SAFARI)
    say(alice, "general", "a first message, long enough to wrap on a narrow screen: " + "words " * 12)
    spam = say(bob, "general", "spam")["id"]
    admin_api(server, "DELETE", f"/messages/{spam}", {"reason": "spam"})
    admin_api(server, "POST", f"/clients/{carol.conn_id}/disconnect", {"reason": "Flooding"})
    carol.wait_closed()
    erin.close()
    erin.wait_closed()
    admin_api(server, "POST", f"/users/{bob.user_id}/ban", {"reason": "Raiding", "seconds": 3600})
    bob.wait_closed()
    admin_api(server, "POST", f"/rooms/general/mutes/{alice.user_id}", {"reason": "Shouting"})
    return alice


def show_everything(page: Page, server: ServerProcess) -> None:
    page.goto(f"http://{server.host}/admin")
    log_in(page)
    expect(page.get_by_test_id("push-state")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("closed-row")).to_have_count(3)
    expect(page.get_by_test_id("ban-row")).to_have_count(1)
    expect(page.get_by_test_id("mute-row")).to_have_count(1)
    expect(page.get_by_test_id("audit-row")).to_have_count(4)
    page.get_by_test_id("room-messages-input").fill("general")
    page.get_by_test_id("room-messages-show").click()
    expect(page.get_by_test_id("message-row")).to_have_count(2)


def test_the_dashboard_has_no_serious_accessibility_violation_in_light_or_dark(
        server: ServerProcess, chat: ChatClients, page: Page) -> None:
    alice = populate_for_review(server, chat)
    page.goto(f"http://{server.host}/admin")
    log_in(page, "not-the-token")  # the login form, with its error shown
    expect(page.get_by_test_id("admin-error")).to_be_visible()
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert severe_violations(page) == [], f"{scheme}, login"
    page.emulate_media(color_scheme="light")
    show_everything(page, server)
    kicked = page.locator('[data-testid="closed-row"][data-name="carol"] [data-col="reason"]')
    expect(kicked).to_have_text("kicked: Flooding")
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert severe_violations(page) == [], scheme
        # And with the dialog open (a mute asks for a room too).
        row_of(page, alice.conn_id).get_by_test_id("mute-user").click()
        expect(page.get_by_test_id("room-input")).to_be_visible()
        assert severe_violations(page) == [], f"{scheme}, dialog open"
        page.get_by_test_id("cancel").click()
        expect(page.get_by_test_id("confirm")).to_be_hidden()


PHONE = {"width": 390, "height": 844}


def test_on_a_phone_no_table_scrolls_sideways_and_disconnect_stays_in_view(
        server: ServerProcess, chat: ChatClients, browser: Browser) -> None:
    alice = populate_for_review(server, chat)
    with checked_page(browser, viewport=PHONE, color_scheme="light", is_mobile=True, has_touch=True) as page:
        show_everything(page, server)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        wide = page.eval_on_selector_all(
            ".table-scroll", "boxes => boxes.filter(b => b.scrollWidth > b.clientWidth + 1)"
            ".map(b => b.querySelector('table').dataset.testid)")
        assert wide == [], f"tables that scroll sideways: {wide}"
        disconnect = row_of(page, alice.conn_id).get_by_test_id("disconnect")
        disconnect.scroll_into_view_if_needed()
        box = disconnect.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert severe_violations(page) == [], scheme
        disconnect.tap()
        page.get_by_test_id("reason-input").fill("Bye from a phone")
        page.get_by_test_id("confirm").tap()
        assert alice.wait_closed() == (4003, "Bye from a phone")

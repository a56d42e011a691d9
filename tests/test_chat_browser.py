"""The chat page in a real Chromium, against a real server process.

Two users chat in a room and by direct message; the server is killed with
SIGKILL and restarted while a message waits in the outbox; messages sent while
a page is away (offline, or the server restarted while the page waits) are
recovered once each, in order; an operator disconnect
(4003) stops reconnection until the user clicks Reconnect, with the composer
and the member list disabled meanwhile; the status and the reconnect toast
are shown during an outage, without hiding the newest message; after giving
up, the page comes back when the network does or the page is shown again;
text from the network stays text, and its links are safe links; the page
works on a phone-sized screen, from the keyboard too.

The conversations: unread badges cleared by reading on another device of the
same user; who is typing, shown to the others only; edits and deletions seen
live and after a reconnect; the room directory, a private room refused to an
outsider, its owner inviting and removing; a muted message not sent again; a
text too long refused before sending; a ban refused at login with its reason.
axe-core finds no serious or critical violation in light or dark mode. A
screenshot of the chat is saved for the README.

Sync Playwright only (no gen_test here, see /work/shared/TESTING.md). Every
test has its own server process (it starts in a fraction of a second); one
Chromium serves the whole module, one browser context per user. Waits are on
conditions; the only fixed waits are the short windows in which something
must NOT happen (no reconnect after a 4003).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sqlite3
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize, WebSocket, expect

from imserver.client import ChatClient
from imserver.client import Message as ClientMessage
from imserver.client import login as client_login
from imserver.testing import ServerProcess, SyncClient, login
from tests.axe import severe_violations
from tests.browser import launch_chromium, screenshot_path, watch_csp

pytestmark = pytest.mark.browser

ADMIN_TOKEN = "chat-browser-test-admin-token"
API_KEY = "chat-browser-test-api-key"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
ROOM = "general"  # the room the page joins by itself

# A short heartbeat and fast reconnects keep outages short; many attempts, so
# that the page does not give up while a context is offline (each offline
# attempt fails at once).
SETTINGS: dict[str, Any] = {
    "heartbeat": {"ping_interval": 1, "ping_timeout": 3, "client_interval": 1, "client_timeout": 3},
    "client": {"reconnect_base_seconds": 0.2, "reconnect_cap_seconds": 1, "stable_after_seconds": 1,
               "reconnect_attempts": 100},
    "admin": {"token": ADMIN_TOKEN},
    "api": {"key": API_KEY},
}
ATTEMPTS = SETTINGS["client"]["reconnect_attempts"]
# With a cap of 1 s any automatic reconnect happens within about a second: a
# window of three seconds without one shows that none is coming.
NO_RECONNECT_WINDOW = 3.0
# Long waits between attempts (random between 0 and 20 s), for tests that need
# the page to stay away until told: "Retry now" or `online` must then act long
# before the timer would fire.
SLOW_BACKOFF: dict[str, Any] = {"reconnect_base_seconds": 20, "reconnect_cap_seconds": 20}

# Text from the network must reach the DOM as text: as HTML this would run.
HOSTILE = "<img src=x onerror=alert(1)>"


# ---- helpers ----------------------------------------------------------------

def admin(server: ServerProcess, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or, with a body, POST) /admin/api/<path> with the admin token."""
    request = urllib.request.Request(
        f"http://{server.host}/admin/api/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def clients_named(server: ServerProcess, name: str) -> list[dict[str, Any]]:
    """The live connections of the user named `name`, from the admin API."""
    query = urllib.parse.urlencode({"user": name})
    found: list[dict[str, Any]] = admin(server, f"clients?{query}")["clients"]
    return [c for c in found if c["name"] == name]


def connections_of(server: ServerProcess, name: str) -> list[str]:
    """The ids of the live connections of the user named `name`, from the admin API."""
    return [c["id"] for c in clients_named(server, name)]


def user_id_of(server: ServerProcess, name: str) -> str:
    """The user id of the connected user named `name`, from the admin API."""
    [user] = {c["user"] for c in clients_named(server, name)}
    return str(user)


def wait_until(page: Page, condition: Callable[[], Any], message: str, timeout: float = 5.0) -> Any:
    """Polls `condition` until it is truthy; fails with `message` after `timeout` seconds.

    Waits through `page`, not time.sleep: the sync API delivers the page's
    events (websocket, dialog, pageerror) only while a Playwright call runs.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, message
        page.wait_for_timeout(50)


_cids = itertools.count()
_tokens: dict[tuple[str, str], str] = {}  # (host, name) -> the last token: the same user again


def login_again(server: ServerProcess, name: str) -> str:
    """A token for guest `name`, the same user on every call (a name is held while its
    token is valid: a second login needs the first one's token)."""
    key = (server.host, name)
    _tokens[key] = login(server.host, name, token=_tokens.get(key))
    return _tokens[key]


def say_from_outside(server: ServerProcess, name: str, room: str, texts: list[str]) -> list[int]:
    """A raw WebSocket client `name` says `texts` in `room`; returns their ids (from the acks).

    Connects for just this, so that the client never sits unread past the
    server's ping timeout.
    """
    client = SyncClient(server.host, f"/ws?token={login_again(server, name)}")
    try:
        assert client.recv_json()["type"] == "welcome"
        client.send_json({"type": "join", "room": room})
        while client.recv_json()["type"] != "joined":
            pass
        cids = [f"{name}-{next(_cids)}" for _ in texts]
        for cid, text in zip(cids, texts, strict=True):
            client.send_json({"type": "say", "room": room, "text": text, "cid": cid})
        ids: dict[str, int] = {}
        while len(ids) < len(cids):
            frame = client.recv_json()
            assert frame["type"] != "error", frame
            if frame["type"] == "ack":
                ids[frame["cid"]] = frame["id"]
        return [ids[cid] for cid in cids]
    finally:
        client.close()


class ChatPage:
    """One user's chat page, in a browser context of its own (own cookies, own storage)."""

    def __init__(self, browser: Browser, server: ServerProcess, name: str, *,
                 viewport: ViewportSize = DESKTOP, **context_options: Any) -> None:
        self.server = server
        self.name = name
        self.context: BrowserContext = browser.new_context(
            viewport=viewport, color_scheme="light", reduced_motion="reduce", **context_options)
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(5_000)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.sockets: list[str] = []  # the URL of every chat WebSocket the page opened
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        watch_csp(self.page, self.errors)  # a CSP violation counts as a page error
        self.page.on("dialog", self._on_dialog)
        self.page.on("websocket", self._on_websocket)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_websocket(self, ws: Any) -> None:
        if urlsplit(ws.url).path == "/ws":
            self.sockets.append(ws.url)

    def by(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    @property
    def status(self) -> Locator:
        return self.by("status")

    def login(self) -> ChatPage:
        """Logs in through the form and waits until the default room is joined."""
        self.page.goto(f"http://{self.server.host}/")
        self.by("login-name").fill(self.name)
        self.by("login-submit").click()
        expect(self.by("chat-view")).to_be_visible()
        self.expect_connected()
        expect(self.by("conversation-title")).to_have_text(f"#{ROOM}")
        # The own name in the member list: the `joined` answer has been shown.
        expect(self.member(self.name)).to_have_count(1)
        return self

    def expect_connected(self, timeout: float = 5_000) -> None:
        expect(self.status).to_have_attribute("data-state", "connected", timeout=timeout)
        expect(self.status).to_have_text("Connected")

    def member(self, name: str) -> Locator:
        return self.page.locator(f'[data-testid="member"][data-name="{name}"]')

    def room(self, name: str) -> Locator:
        """The sidebar item of room `name`."""
        return self.page.locator(f'[data-testid="room-item"][data-name="{name}"]')

    def dm(self, name: str) -> Locator:
        """The sidebar item of the direct conversation with the user named `name`."""
        return self.page.locator(f'[data-testid="dm-item"][data-name="{name}"]')

    def open(self, item: Locator, title: str) -> None:
        """Opens the conversation of a sidebar item and waits until it is shown."""
        item.locator(".conv-open").click()
        expect(self.by("conversation-title")).to_have_text(title)

    def join(self, room: str) -> None:
        """Joins `room` with the sidebar's form; it is then shown."""
        self.by("room-input").fill(room)
        self.by("room-join").click()
        expect(self.by("conversation-title")).to_have_text(f"#{room}")

    def edit(self, text: str, new_text: str) -> Locator:
        """Edits my message `text` to `new_text` with its Edit button; returns its row."""
        row = self.expect_once(text)
        row.get_by_test_id("message-edit").click()
        row.get_by_test_id("message-editor-input").fill(new_text)
        row.get_by_test_id("message-editor-input").press("Enter")
        return self.expect_once(new_text)

    def message(self, other: str, text: str) -> None:
        """Sends `text` to the member named `other` of the room shown, by direct message."""
        self.member(other).get_by_role("button").click()
        expect(self.by("conversation-title")).to_have_text(f"@{other}")
        self.send(text)

    def type_in(self, room: str, text: str) -> None:
        """Types `text` (without sending it) in `room`."""
        self.open(self.room(room), f"#{room}")
        self.by("composer-input").press_sequentially(text)

    def send(self, text: str) -> None:
        """Types `text` into the composer and presses Enter."""
        self.by("composer-input").fill(text)
        self.by("composer-input").press("Enter")
        expect(self.by("composer-input")).to_have_value("")

    @property
    def rows(self) -> Locator:
        """The message rows of the open conversation."""
        return self.page.locator('[data-testid="message-list"] > [data-testid="message"]')

    def rows_with(self, text: str) -> Locator:
        """The message rows whose text is exactly `text`."""
        exact = re.compile(f"^{re.escape(text)}$")
        return self.rows.filter(has=self.page.locator(".message-text", has_text=exact))

    def expect_once(self, text: str, *, sender: str | None = None, timeout: float = 5_000) -> Locator:
        """Waits for exactly one confirmed row with `text` (from `sender`, if given)."""
        row = self.rows_with(text)
        expect(row).to_have_count(1, timeout=timeout)
        expect(row).to_have_attribute("data-pending", "false", timeout=timeout)
        expect(row).to_have_attribute("data-id", re.compile(r"^\d+$"))
        if sender is not None:
            expect(row.locator(".message-from")).to_have_text(sender)
        return row

    def shown(self) -> list[tuple[int, str]]:
        """(id, text) of each confirmed row, top to bottom."""
        rows: list[list[str]] = self.page.eval_on_selector_all(
            '[data-testid="message-list"] > [data-testid="message"]',
            "rows => rows.map(r => [r.dataset.id, r.querySelector('.message-text').textContent])")
        return [(int(i), text) for i, text in rows if i]

    def wait_for_countdown(self, at_least: int = 5) -> None:
        """Waits until the toast is shown, counting down to an attempt at least `at_least` s away.

        The check is one evaluation in the page, so it cannot mix two states.
        With SLOW_BACKOFF the waits are random between 0 and 20 s, so a
        countdown of 5 s or more takes an attempt or two; until it ends
        nothing else happens.
        """
        self.page.wait_for_function(
            """at_least => {
              const toast = document.querySelector('[data-testid="toast"]');
              const m = /^Reconnecting (?:in (\\d+) s|now), attempt \\d+ of \\d+$/.exec(
                document.querySelector('[data-testid="toast-text"]').textContent);
              return !toast.hidden && m !== null && Number(m[1] ?? 0) >= at_least;
            }""", arg=at_least, timeout=15_000)

    def close(self) -> None:
        self.context.close()


# ---- fixtures ---------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def client_settings() -> dict[str, Any]:
    """Overrides of the `client` section; a test may parametrize this."""
    return {}


@pytest.fixture
def limits_settings() -> dict[str, Any]:
    """Overrides of the `limits` section; a test may parametrize this."""
    return {}


@pytest.fixture
def server(tmp_path: Path, client_settings: dict[str, Any],
           limits_settings: dict[str, Any]) -> Iterator[ServerProcess]:
    """A fresh server process, stopped (and its log checked) after the test."""
    settings = {section: dict(values) for section, values in SETTINGS.items()}
    settings["client"].update(client_settings)
    settings["limits"] = dict(limits_settings)
    proc = ServerProcess(tmp_path, settings).start()
    yield proc
    proc.stop()
    log = proc.log_path.read_text(encoding="utf-8")  # every run, also before a SIGKILL
    assert "Traceback" not in log, log


class Chats:
    """Opens chat pages: `chat(name, **context_options)` logs a user in (a browser
    context of its own); `chat.device(page)` opens another device of the same user
    (another context, with the first one's session cookie)."""

    def __init__(self, browser: Browser, server: ServerProcess) -> None:
        self.browser = browser
        self.server = server
        self.pages: list[ChatPage] = []

    def __call__(self, name: str, **options: Any) -> ChatPage:
        chat_page = ChatPage(self.browser, self.server, name, **options)
        self.pages.append(chat_page)
        return chat_page.login()

    def device(self, of: ChatPage, **options: Any) -> ChatPage:
        chat_page = ChatPage(self.browser, self.server, of.name, **options)
        self.pages.append(chat_page)
        url = f"http://{self.server.host}/"
        chat_page.context.add_cookies(
            [{"name": c["name"], "value": c["value"], "url": url} for c in of.context.cookies()])
        chat_page.page.goto(f"http://{self.server.host}/")
        expect(chat_page.by("whoami")).to_have_text(of.name)
        chat_page.expect_connected()
        return chat_page


@pytest.fixture
def chat(browser: Browser, server: ServerProcess) -> Iterator[Chats]:
    """chat(name, **context_options) -> a logged-in ChatPage (see Chats); checks for
    page errors and dialogs."""
    chats = Chats(browser, server)
    yield chats
    for chat_page in chats.pages:
        chat_page.close()
    for chat_page in chats.pages:
        assert not chat_page.errors, f"{chat_page.name}: page errors {chat_page.errors}"
        assert not chat_page.dialogs, f"{chat_page.name}: dialogs {chat_page.dialogs}"


# ---- tests ------------------------------------------------------------------

def test_two_users_chat_in_a_room_and_by_direct_message(chat: Callable[..., ChatPage]) -> None:
    alice = chat("alice")
    bob = chat("bob")
    # Presence: each sees the other among the room's members.
    expect(alice.member("bob")).to_have_count(1)
    expect(bob.member("alice")).to_have_count(1)

    alice.send("Hi Bob, are you there?")
    bob.expect_once("Hi Bob, are you there?", sender="alice")
    alice.expect_once("Hi Bob, are you there?", sender="alice")
    bob.send("Yes! Hi Alice.")
    alice.expect_once("Yes! Hi Alice.", sender="bob")
    assert [text for _, text in alice.shown()] == [text for _, text in bob.shown()] == [
        "Hi Bob, are you there?", "Yes! Hi Alice."]

    # Clicking a member opens the direct conversation with them.
    alice.member("bob").get_by_role("button").click()
    expect(alice.by("conversation-title")).to_have_text("@bob")
    expect(alice.page.locator('[data-testid="dm-item"][data-name="bob"]')).to_have_count(1)
    expect(alice.rows).to_have_count(0)
    alice.send("Psst, just between us")
    alice.expect_once("Psst, just between us", sender="alice")

    # Bob gets it as a new, unread direct conversation, not in the room.
    bob_dm = bob.page.locator('[data-testid="dm-item"][data-name="alice"]')
    expect(bob_dm.get_by_test_id("unread")).to_have_text("1")
    expect(bob.rows_with("Psst, just between us")).to_have_count(0)
    bob_dm.locator(".conv-open").click()
    expect(bob.by("conversation-title")).to_have_text("@alice")
    bob.expect_once("Psst, just between us", sender="alice")
    expect(bob_dm.get_by_test_id("unread")).to_have_count(0)
    bob.send("Got it")
    alice.expect_once("Got it", sender="bob")
    assert [text for _, text in alice.shown()] == ["Psst, just between us", "Got it"]

    # The room still holds only the room's messages.
    alice.page.locator('[data-testid="room-item"][data-name="general"] .conv-open').click()
    expect(alice.by("conversation-title")).to_have_text("#general")
    assert [text for _, text in alice.shown()] == ["Hi Bob, are you there?", "Yes! Hi Alice."]


def test_pages_show_display_names_and_a_name_in_use_cannot_be_taken(
        browser: Browser, server: ServerProcess, chat: Callable[..., ChatPage]) -> None:
    alice = chat("alice")
    bob = chat("bob")
    expect(alice.by("whoami")).to_have_text("alice")
    bob_member = alice.member("bob")
    expect(bob_member).to_have_attribute("data-user", re.compile(r"^g:"))
    expect(bob_member.locator(".member-name")).to_have_text("bob")
    bob_member.get_by_role("button").click()
    alice.send("only for bob")
    bob_dm = bob.page.locator('[data-testid="dm-item"][data-name="alice"]')
    expect(bob_dm.locator(".conv-name")).to_have_text("alice")
    bob_dm.locator(".conv-open").click()
    expect(bob.by("conversation-title")).to_have_text("@alice")
    bob.expect_once("only for bob", sender="alice")
    for page in (alice, bob):  # user ids are keys, never text on the page
        assert "g:" not in page.page.inner_text("body")

    # Another browser cannot log in as alice while alice's session is valid.
    impostor = ChatPage(browser, server, "ALICE")
    try:
        impostor.page.goto(f"http://{server.host}/")
        impostor.by("login-name").fill("ALICE")
        impostor.by("login-submit").click()
        expect(impostor.by("login-error")).to_contain_text("in use")
        expect(impostor.by("chat-view")).to_be_hidden()

        # alice's own second tab is alice, by its cookie.
        tab = alice.context.new_page()
        tab.goto(f"http://{server.host}/")
        expect(tab.get_by_test_id("whoami")).to_have_text("alice")
        tab.close()

        # Once alice logs out the name is free, and whoever takes it is someone new.
        alice.by("logout").click()
        expect(alice.by("login-view")).to_be_visible()
        impostor.by("login-submit").click()
        expect(impostor.by("chat-view")).to_be_visible()
        expect(impostor.by("whoami")).to_have_text("ALICE")
        impostor.expect_connected()
        expect(impostor.page.locator('[data-testid="dm-item"]')).to_have_count(0)
        assert not impostor.errors
    finally:
        impostor.close()


def test_message_typed_while_the_server_is_down_arrives_once_after_a_restart(
        server: ServerProcess, chat: Callable[..., ChatPage]) -> None:
    alice = chat("alice")
    bob = chat("bob")
    alice.send("before the crash")
    bob.expect_once("before the crash")
    sockets_before = (len(alice.sockets), len(bob.sockets))

    server.kill()  # SIGKILL: no bye, the sockets just break
    for page in (alice, bob):
        expect(page.status).to_have_attribute("data-state", "reconnecting")
        expect(page.status).to_have_text("Reconnecting…")
        page.wait_for_countdown(at_least=0)  # the toast, between two quick attempts
        expect(page.by("toast-retry")).to_have_text("Retry now")

    text = "typed while the server was down"
    alice.send(text)
    pending = alice.rows_with(text)
    expect(pending).to_have_count(1)
    expect(pending).to_have_attribute("data-pending", "true")
    expect(pending).to_have_class(re.compile(r"\bpending\b"))
    expect(pending.locator(".message-marker")).to_have_text("Sending…")
    expect(pending).to_have_attribute("data-id", "")

    server.start()  # same port, same data directory
    for page in (alice, bob):
        page.expect_connected()
    for page in (alice, bob):  # the rooms were re-joined: each sees the other again
        for name in ("alice", "bob"):
            expect(page.member(name)).to_have_count(1)
    # Once on the other page; on the sender's page the pending row became the message.
    bob.expect_once(text, sender="alice")
    sent = alice.expect_once(text, sender="alice")
    expect(sent).not_to_have_class(re.compile(r"\bpending\b"))
    expect(sent.locator(".message-marker")).to_be_hidden()

    # A barrier: once bob's later message is through, any duplicate would have been too.
    bob.send("welcome back")
    alice.expect_once("welcome back")
    for page in (alice, bob):
        expect(page.rows_with(text)).to_have_count(1)
        expect(page.rows_with("before the crash")).to_have_count(1)
        shown = page.shown()
        assert [t for _, t in shown] == ["before the crash", text, "welcome back"], shown
        assert [i for i, _ in shown] == sorted({i for i, _ in shown}), shown

    # Both came back by themselves, as reconnects.
    for page, before in zip((alice, bob), sockets_before, strict=True):
        assert len(page.sockets) > before
        query = parse_qs(urlsplit(page.sockets[-1]).query)
        assert int(query["reconnect"][0]) >= 1, page.sockets[-1]


@pytest.mark.parametrize("client_settings", [SLOW_BACKOFF], ids=["slow-backoff"])
@pytest.mark.parametrize("outage", ["offline", "server-restart"])
def test_messages_sent_while_a_page_is_away_are_recovered_once_in_order(
        server: ServerProcess, chat: Callable[..., ChatPage], outage: str) -> None:
    """offline: bob's context loses the network (the page closes its socket).
    server-restart: the server is killed and restarted while bob's next attempt
    is still seconds away; the messages then come from the restarted server's store.
    """
    bob = chat("bob")
    say_from_outside(server, "carol", ROOM, ["carol was here first"])
    bob.expect_once("carol was here first", sender="carol")

    if outage == "offline":
        bob.context.set_offline(True)
        expect(bob.status).to_have_attribute("data-state", "offline")
        expect(bob.status).to_have_text("Offline")
    else:
        server.kill()
        expect(bob.status).to_have_attribute("data-state", "reconnecting")
    # Long waits between attempts (SLOW_BACKOFF): the page stays away until told.
    bob.wait_for_countdown()
    if outage == "server-restart":
        server.start()
    wait_until(bob.page, lambda: not connections_of(server, "bob"), "bob is still connected")

    missed = [f"missed message {n}" for n in range(1, 4)]
    ids = say_from_outside(server, "carol", ROOM, missed)
    assert ids == sorted(ids), ids
    # Bob has not been back in between: what he shows next can only come from recovery.
    assert not connections_of(server, "bob")
    expect(bob.rows_with(missed[0])).to_have_count(0)

    sockets = len(bob.sockets)
    if outage == "offline":
        bob.context.set_offline(False)  # `online`: the page reconnects at once, not in seconds
        causes = {"network"}
    else:
        bob.by("toast-retry").click()  # the countdown still has seconds to go
        causes = {"close", "error"}  # the socket broke, or a later attempt was refused
    bob.expect_connected(timeout=1_500)
    assert len(bob.sockets) == sockets + 1, bob.sockets[sockets:]
    [cause] = parse_qs(urlsplit(bob.sockets[-1]).query)["cause"]
    assert cause in causes, bob.sockets[-1]

    for text in missed:
        bob.expect_once(text, sender="carol")
    bob.expect_once("carol was here first")
    shown = bob.shown()
    assert shown == [(i, t) for i, t in sorted(shown)], f"not in id order: {shown}"
    assert [(i, t) for i, t in shown if t in missed] == list(zip(ids, missed, strict=True))


def test_operator_disconnect_stops_reconnecting_until_the_user_reconnects(
        server: ServerProcess, chat: Callable[..., ChatPage]) -> None:
    bob = chat("bob")
    [conn_id] = connections_of(server, "bob")
    sockets = len(bob.sockets)

    reason = "Please stop <b>spamming</b> the room"  # shown as text, like all server text
    assert admin(server, f"clients/{conn_id}/disconnect", {"reason": reason}) == {"disconnected": [conn_id]}

    expect(bob.by("kicked")).to_be_visible()
    expect(bob.by("kicked-reason")).to_have_text(reason)
    expect(bob.by("reconnect")).to_be_visible()
    expect(bob.status).to_have_attribute("data-state", "stopped")
    expect(bob.by("toast")).to_be_hidden()
    # Nothing can be queued as "Sending…", and no stale presence is shown: the page says why.
    expect(bob.by("composer-input")).to_be_disabled()
    expect(bob.by("composer-send")).to_be_disabled()
    expect(bob.by("composer-input")).to_have_attribute("placeholder", re.compile("operator"))
    expect(bob.by("member-list").locator('[data-testid="member"]')).to_have_count(0)
    expect(bob.by("members-note")).to_contain_text("Disconnected by an operator")

    assert bob.page.locator('[data-testid="kicked-reason"] b').count() == 0

    # No reconnect on its own: no new socket, and the server has no bob, for a
    # while; not even on the signals that make a waiting page retry at once
    # (the network coming back, the page being shown again).
    bob.context.set_offline(True)
    bob.context.set_offline(False)
    bob.page.evaluate("""() => {
      window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}));
      document.dispatchEvent(new Event('visibilitychange'));
    }""")
    deadline = time.monotonic() + NO_RECONNECT_WINDOW
    while time.monotonic() < deadline:
        assert len(bob.sockets) == sockets, f"reconnected by itself: {bob.sockets[sockets:]}"
        assert not connections_of(server, "bob"), "bob is connected again without clicking Reconnect"
        bob.page.wait_for_timeout(200)  # lets Playwright deliver websocket events
    expect(bob.by("kicked")).to_be_visible()

    bob.by("reconnect").click()
    bob.expect_connected()
    expect(bob.by("kicked")).to_be_hidden()
    expect(bob.by("composer-input")).to_be_enabled()
    expect(bob.member("bob")).to_have_count(1)
    expect(bob.by("members-note")).to_be_hidden()
    assert len(bob.sockets) == sockets + 1
    [new_id] = wait_until(bob.page, lambda: connections_of(server, "bob"), "bob did not come back")
    assert new_id != conn_id
    bob.send("sorry, back again")
    bob.expect_once("sorry, back again")


@pytest.mark.parametrize("client_settings", [SLOW_BACKOFF], ids=["slow-backoff"])
def test_status_and_reconnect_toast_while_the_server_is_down(
        server: ServerProcess, chat: Callable[..., ChatPage]) -> None:
    alice = chat("alice")
    expect(alice.by("toast")).to_be_hidden()

    server.kill()
    expect(alice.status).to_have_attribute("data-state", "reconnecting")
    expect(alice.status).to_have_text("Reconnecting…")
    # The toast counts down to the next attempt ("Reconnecting in 7 s, attempt 2 of 100").
    alice.wait_for_countdown()
    expect(alice.by("toast")).to_be_visible()
    expect(alice.by("toast-retry")).to_be_visible()
    expect(alice.by("toast-retry")).to_have_text("Retry now")
    attempt = int(re.findall(r"attempt (\d+)", alice.by("toast-text").inner_text())[0])
    expect(alice.status).to_have_attribute("data-state", "reconnecting")

    # "Retry now" tries at once, long before the countdown ends; that attempt
    # fails too (the server is still down) and the next one is counted.
    sockets = len(alice.sockets)
    alice.by("toast-retry").click()
    wait_until(alice.page, lambda: len(alice.sockets) > sockets, "Retry now made no attempt", timeout=1.5)
    assert parse_qs(urlsplit(alice.sockets[-1]).query)["reconnect"] == [str(attempt)]
    expect(alice.by("toast-text")).to_contain_text(f"attempt {attempt + 1} of {ATTEMPTS}")
    expect(alice.by("toast")).to_be_visible()

    server.start()
    # The next attempt may be up to 20 s away: Retry now connects at once. (If
    # it is under 2 s away, it is simply awaited: no click that could race it.)
    outcome = alice.page.wait_for_function(
        """() => {
          const state = document.querySelector('[data-testid="status"]').dataset.state;
          if (state === 'connected') return 'connected';
          const toast = document.querySelector('[data-testid="toast"]');
          const m = /in (\\d+) s/.exec(document.querySelector('[data-testid="toast-text"]').textContent);
          return !toast.hidden && m !== null && Number(m[1]) >= 3 ? 'waiting' : false;
        }""").json_value()
    if outcome == "waiting":
        alice.by("toast-retry").click()
        alice.expect_connected(timeout=1_500)
    alice.expect_connected()
    expect(alice.by("toast")).to_be_hidden()
    alice.send("back online")
    alice.expect_once("back online")


def test_message_text_is_shown_as_text_not_html(chat: Callable[..., ChatPage]) -> None:
    alice = chat("alice")
    bob = chat("bob")
    alice.send(HOSTILE)
    bob.expect_once(HOSTILE, sender="alice")
    alice.expect_once(HOSTILE)
    # Time for an injected image to fail to load (its onerror would open a dialog).
    bob.send("and now something harmless")
    alice.expect_once("and now something harmless")
    for page in (alice, bob):
        assert page.page.locator('[data-testid="message-list"] img').count() == 0
        assert page.page.locator(".message-text *").count() == 0
        expect(page.rows_with(HOSTILE).locator(".message-text")).to_have_text(HOSTILE)

    # The same by direct message.
    alice.member("bob").get_by_role("button").click()
    alice.send(HOSTILE)
    bob.page.locator('[data-testid="dm-item"][data-name="alice"] .conv-open').click()
    bob.expect_once(HOSTILE, sender="alice")
    bob.send("ok")
    alice.expect_once("ok")
    for page in (alice, bob):
        assert page.page.locator(".message-text *").count() == 0
        assert not page.dialogs, page.dialogs
        assert not page.errors, page.errors


def test_a_phone_sized_screen_is_usable(chat: Callable[..., ChatPage]) -> None:
    mia = chat("mia", viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = mia.page

    def no_sideways_scroll() -> None:
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the page scrolls sideways: {width}"

    no_sideways_scroll()
    # After login the keyboard is in the composer.
    expect(mia.by("composer-input")).to_be_focused()
    # The side panels are drawers, closed; the composer is on screen.
    expect(mia.by("composer-input")).to_be_in_viewport()
    expect(mia.by("composer-send")).to_be_in_viewport()
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(page.locator("#members")).not_to_be_in_viewport()

    mia.by("composer-input").fill("hello from my phone")
    mia.by("composer-send").tap()
    row = mia.expect_once("hello from my phone", sender="mia")
    expect(row).to_be_in_viewport()
    no_sideways_scroll()

    # The drawers open and close by touch; their toggles say whether they are open.
    for toggle in ("rooms-toggle", "members-toggle"):
        expect(mia.by(toggle)).to_have_attribute("aria-expanded", "false")
    mia.by("rooms-toggle").tap()
    expect(mia.by("rooms-toggle")).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#sidebar")).to_be_in_viewport()
    expect(mia.room("general")).to_be_in_viewport()
    mia.by("scrim").tap(position={"x": PHONE["width"] - 20, "y": 300})
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    expect(mia.by("rooms-toggle")).to_have_attribute("aria-expanded", "false")
    mia.by("members-toggle").tap()
    expect(mia.member("mia")).to_be_in_viewport()
    mia.by("scrim").tap(position={"x": 20, "y": 300})
    expect(page.locator("#members")).not_to_be_in_viewport()
    expect(mia.by("composer-input")).to_be_in_viewport()
    no_sideways_scroll()

    # From the keyboard: an opened drawer takes the focus, Escape gives it back to its toggle.
    for toggle, drawer in (("rooms-toggle", "#sidebar"), ("members-toggle", "#members")):
        mia.by(toggle).focus()
        page.keyboard.press("Enter")
        expect(mia.by(toggle)).to_have_attribute("aria-expanded", "true")
        page.wait_for_function("d => document.querySelector(d).contains(document.activeElement)", arg=drawer)
        page.keyboard.press("Escape")
        expect(mia.by(toggle)).to_have_attribute("aria-expanded", "false")
        expect(mia.by(toggle)).to_be_focused()
        expect(page.locator(drawer)).not_to_be_in_viewport()
    # A closed drawer is out of the tab order: Tab from the composer never lands in one.
    mia.by("composer-input").focus()
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("!document.activeElement.closest('#sidebar, #members')"), \
            page.evaluate("document.activeElement.outerHTML")


def test_screenshot_of_the_chat_for_the_readme(chat: Chats, tmp_path: Path) -> None:
    alice = chat("alice", viewport=DESKTOP)
    bob = chat("bob", viewport=DESKTOP)
    # Two more rooms in the sidebar (one private); then back to #general.
    alice.join("design")
    alice.by("browse-rooms").click()
    alice.by("create-name").fill("launch")
    alice.by("create-topic").fill("the launch plan")
    alice.by("create-private").check()
    alice.by("create-submit").click()
    expect(alice.by("conversation-title")).to_have_text("#launch")
    alice.open(alice.room("general"), "#general")

    conversation = [
        (alice, "Morning Bob! Did the deploy go out last night?"),
        (bob, "It did, around 23:00. No errors so far: https://status.example.com"),
        (alice, "Great. I killed the server on purpose this morning to test reconnects."),
        (alice, "The page came back by itself and my queued message went out once."),
        (bob, "Nice, exactly what we wanted. Lunch at 12?"),
        (alice, "Sounds good, see you there."),
    ]
    for sender, text in conversation:
        sender.send(text)
        alice.expect_once(text)
    # One of alice's messages, edited.
    edited = alice.edit("Sounds good, see you there.", "Sounds good, see you at the usual place.")
    expect(edited.get_by_test_id("message-edited")).to_be_visible()
    # Unread badges: bob's message in #design, and a direct message waiting for alice.
    bob.join("design")
    bob.send("I put the mockups in the shared folder.")
    expect(alice.room("design").get_by_test_id("unread")).to_have_text("1")
    bob.message("alice", "Can you review my pull request after lunch?")
    expect(alice.dm("bob").get_by_test_id("unread")).to_have_text("1")
    bob.type_in("general", "On my way")
    expect(alice.by("typing")).to_have_text("bob is typing…")

    expect(alice.member("bob")).to_be_visible()
    expect(alice.member("alice")).to_be_visible()
    expect(alice.rows).to_have_count(len(conversation))
    alice.page.evaluate("document.activeElement && document.activeElement.blur()")
    alice.page.mouse.move(0, 0)
    path = screenshot_path("chat.png", tmp_path)
    alice.page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


# ---- the page, as a new user found it -------------------------------------------

@pytest.mark.parametrize("client_settings", [SLOW_BACKOFF], ids=["slow-backoff"])
def test_the_reconnect_toast_never_hides_the_newest_message(
        server: ServerProcess, chat: Chats) -> None:
    alice = chat("alice")
    # More than the list shows at once (tall messages: the rate limit allows few at a time).
    texts = ["\n".join(f"message {m}, line {n}" for n in range(6)) for m in range(8)]
    say_from_outside(server, "carol", ROOM, texts)
    alice.expect_once(texts[-1])
    assert alice.page.evaluate(
        "(s => s.scrollHeight > s.clientHeight)(document.querySelector('[data-testid=message-scroller]'))")

    server.kill()
    expect(alice.by("toast")).to_be_visible()
    # The newest message is whole in the list's box, and the toast is not over it.
    alice.page.wait_for_function("""() => {
      const box = (el) => el.getBoundingClientRect();
      const rows = document.querySelectorAll('[data-testid="message-list"] > [data-testid="message"]');
      const last = box(rows[rows.length - 1]);
      const list = box(document.querySelector('[data-testid="message-scroller"]'));
      const toast = box(document.querySelector('[data-testid="toast"]'));
      return !document.querySelector('[data-testid="toast"]').hidden
        && last.bottom <= list.bottom + 1 && last.top >= list.top
        && (toast.top >= last.bottom - 1 || toast.bottom <= last.top + 1);
    }""", timeout=2_000)


GIVE_UP_FAST: dict[str, Any] = {
    "reconnect_attempts": 2, "reconnect_base_seconds": 0.1, "reconnect_cap_seconds": 0.2}


@pytest.mark.parametrize("client_settings", [GIVE_UP_FAST], ids=["two-attempts"])
@pytest.mark.parametrize("signal", ["online", "visible"])
def test_after_giving_up_the_page_comes_back_when_the_browser_says_so(
        server: ServerProcess, chat: Chats, signal: str) -> None:
    alice = chat("alice")
    server.kill()
    expect(alice.by("gave-up")).to_be_visible()
    expect(alice.by("gave-up-text")).to_have_text("Could not reconnect after 2 attempts.")
    server.start()
    sockets = len(alice.sockets)
    if signal == "online":  # the network comes back
        alice.context.set_offline(True)
        alice.context.set_offline(False)
    else:  # the user comes back to the tab
        alice.page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    alice.expect_connected()
    expect(alice.by("gave-up")).to_be_hidden()
    assert len(alice.sockets) == sockets + 1, alice.sockets[sockets:]
    alice.send("back by myself")
    alice.expect_once("back by myself")


@pytest.mark.parametrize("limits_settings", [{"max_text_chars": 50}], ids=["50-chars"])
def test_a_text_too_long_is_refused_before_sending_and_kept(chat: Chats) -> None:
    alice = chat("alice")
    composer = alice.by("composer-input")
    expect(alice.by("counter")).to_be_hidden()
    composer.fill("x" * 45)
    expect(alice.by("counter")).to_have_text("5 characters left")
    too_long = "y" * 60
    composer.fill(too_long)
    expect(alice.by("counter")).to_have_text("10 characters too many (limit 50)")
    expect(composer).to_have_attribute("aria-invalid", "true")
    composer.press("Enter")
    expect(alice.by("flash")).to_contain_text("Too long to send")
    expect(composer).to_have_value(too_long)  # kept, to be shortened
    expect(alice.rows).to_have_count(0)  # nothing sent, nothing struck through
    composer.fill("😀" * 50)  # counted as the server counts: 50, not 100
    expect(alice.by("counter")).to_have_text("0 characters left")
    composer.press("Enter")
    alice.expect_once("😀" * 50)
    expect(alice.by("counter")).to_be_hidden()


def test_links_in_messages_are_safe_links(chat: Chats) -> None:
    alice = chat("alice")
    bob = chat("bob")
    text = "the guide: https://example.com/guide?x=1, not javascript:alert(1) nor <a href=x>this</a>"
    alice.send(text)
    row = bob.expect_once(text, sender="alice")
    link = row.locator(".message-text a")
    expect(link).to_have_count(1)
    expect(link).to_have_text("https://example.com/guide?x=1")
    expect(link).to_have_attribute("href", "https://example.com/guide?x=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    assert row.locator(".message-text *").count() == 1  # the markup in the text stays text


def test_a_ban_refused_at_login_shows_its_reason(
        browser: Browser, server: ServerProcess, chat: Chats) -> None:
    alice = chat("alice")
    ban = {"reason": "spamming the room", "seconds": 3600}
    admin(server, f"users/{user_id_of(server, 'alice')}/ban", ban)
    expect(alice.by("kicked")).to_be_visible()
    again = ChatPage(browser, server, "alice")
    try:
        again.page.goto(f"http://{server.host}/")
        again.by("login-name").fill("alice")
        again.by("login-submit").click()
        expect(again.by("login-error")).to_have_text(
            re.compile(r"^You are banned from this chat until .+\. Reason: spamming the room$"))
        expect(again.by("chat-view")).to_be_hidden()
    finally:
        again.close()


# ---- conversations ----------------------------------------------------------------

def test_reading_on_one_device_clears_the_badge_on_the_other(chat: Chats) -> None:
    laptop = chat("alice")
    bob = chat("bob")
    laptop.join("random")
    laptop.open(laptop.room("general"), "#general")
    phone = chat.device(laptop)  # alice's other device: her rooms come with her
    expect(phone.room("random")).to_have_count(1)
    expect(phone.by("conversation-title")).to_have_text("#general")

    bob.join("random")
    bob.send("first in random")
    bob.send("second in random")
    for device in (laptop, phone):
        expect(device.room("random").get_by_test_id("unread")).to_have_text("2")
    # The counts are the server's: a reload shows them again.
    phone.page.reload()
    phone.expect_connected()
    expect(phone.room("random").get_by_test_id("unread")).to_have_text("2")
    expect(phone.by("conversation-title")).to_have_text("#general")

    # Reading on the laptop clears the badge on the phone.
    laptop.open(laptop.room("random"), "#random")
    laptop.expect_once("second in random")
    expect(laptop.room("random").get_by_test_id("unread")).to_have_count(0)
    expect(phone.room("random").get_by_test_id("unread")).to_have_count(0)

    # The same for a direct message, read on the phone.
    bob.message("alice", "just for you")
    for device in (laptop, phone):
        expect(device.dm("bob").get_by_test_id("unread")).to_have_text("1")
    phone.open(phone.dm("bob"), "@bob")
    phone.expect_once("just for you")
    expect(laptop.dm("bob").get_by_test_id("unread")).to_have_count(0)


def test_who_is_typing_is_shown_to_the_others_only(chat: Chats) -> None:
    alice = chat("alice")
    bob = chat("bob")
    carol = chat("carol")
    alice_phone = chat.device(alice)
    alice.by("composer-input").press_sequentially("hel")
    expect(bob.by("typing")).to_have_text("alice is typing…")
    carol.by("composer-input").press_sequentially("hm")
    expect(bob.by("typing")).to_have_text("alice and carol are typing…")
    # Never to the typist: not on her page, not on her other device.
    for page in (alice, alice_phone):
        expect(page.by("typing")).to_have_text("carol is typing…")
    # Sending ends it; so does clearing the text.
    alice.by("composer-input").press_sequentially("lo")
    alice.by("composer-input").press("Enter")
    bob.expect_once("hello")
    expect(bob.by("typing")).to_have_text("carol is typing…")
    carol.by("composer-input").fill("")
    expect(bob.by("typing")).to_have_text("")
    expect(alice.by("typing")).to_have_text("")

    # In a direct conversation: shown in that conversation only.
    bob.message("alice", "psst")
    alice.open(alice.dm("bob"), "@bob")
    alice.by("composer-input").press_sequentially("yes?")
    expect(bob.by("typing")).to_have_text("alice is typing…")
    bob.open(bob.room("general"), "#general")
    expect(bob.by("typing")).to_have_text("")


def test_edits_and_deletions_are_seen_live_and_after_a_reconnect(
        server: ServerProcess, chat: Chats) -> None:
    alice = chat("alice")
    bob = chat("bob")
    alice.send("helo wrld")
    alice.send("a second thought")
    bob.expect_once("a second thought")
    bob.send("hi")
    theirs = alice.expect_once("hi")
    expect(theirs.get_by_test_id("message-edit")).to_have_count(0)  # only one's own messages

    # Edit from the keyboard: the Edit button, then the editor.
    row = alice.expect_once("helo wrld")
    row.get_by_test_id("message-edit").focus()
    alice.page.keyboard.press("Enter")
    editor = row.get_by_test_id("message-editor-input")
    expect(editor).to_be_focused()
    editor.fill("hello world")
    editor.press("Enter")
    for page in (alice, bob):
        edited = page.expect_once("hello world")
        expect(edited.get_by_test_id("message-edited")).to_have_text("(edited)")
        expect(page.rows_with("helo wrld")).to_have_count(0)

    # While bob is away: another edit, and a deletion; his recovery (join with since) brings both.
    bob.context.set_offline(True)
    wait_until(bob.page, lambda: not connections_of(server, "bob"), "bob is still connected")
    row = alice.expect_once("hello world")
    row.get_by_test_id("message-edit").click()
    row.get_by_test_id("message-editor-input").fill("hello, world")
    row.get_by_test_id("message-save").click()  # the button, this time
    alice.expect_once("hello, world")
    second = alice.expect_once("a second thought")
    second.get_by_test_id("message-delete").click()
    second.get_by_test_id("message-confirm-delete").click()
    expect(alice.rows_with("message deleted")).to_have_count(1)
    expect(alice.rows_with("message deleted").get_by_test_id("message-edit")).to_have_count(0)

    bob.context.set_offline(False)
    bob.expect_connected()
    expect(bob.rows_with("hello, world").get_by_test_id("message-edited")).to_be_visible()
    deleted = bob.rows_with("message deleted")
    expect(deleted).to_have_count(1)
    expect(deleted).to_have_attribute("data-deleted", "true")
    expect(bob.rows_with("a second thought")).to_have_count(0)
    # A page that never saw the messages gets their latest versions.
    fresh = chat.device(bob)
    fresh.expect_once("hello, world")
    expect(fresh.rows_with("message deleted")).to_have_count(1)
    assert [t for _, t in fresh.shown()] == ["hello, world", "message deleted", "hi"]

    # A direct message is edited the same way.
    alice.message("bob", "in private")
    alice.edit("in private", "in private, edited")
    bob.open(bob.dm("alice"), "@alice")
    expect(bob.expect_once("in private, edited").get_by_test_id("message-edited")).to_be_visible()


def test_the_room_directory_and_a_private_room_with_its_owner(chat: Chats) -> None:
    alice = chat("alice")
    bob = chat("bob")
    alice.by("browse-rooms").click()
    directory = alice.by("directory")
    expect(directory).to_be_visible()
    general = directory.locator('[data-testid="directory-room"][data-room="general"]')
    expect(general.get_by_test_id("directory-members")).to_have_text("2 members")
    expect(general.get_by_test_id("directory-join")).to_have_text("Open")

    # A private room, created from the directory.
    alice.by("create-name").fill("design")
    alice.by("create-topic").fill("the new logo")
    alice.by("create-private").check()
    alice.by("create-submit").click()
    expect(directory).to_be_hidden()
    expect(alice.by("conversation-title")).to_have_text("#design")
    expect(alice.by("topic")).to_have_text("Private room · the new logo")
    alice.send("sketches coming")

    # Not for bob: refused, and said why.
    bob.by("room-input").fill("design")
    bob.by("room-join").click()
    expect(bob.by("flash")).to_have_text("#design is a private room: only members it invited can join.")
    expect(bob.room("design")).to_have_count(0)
    expect(bob.by("conversation-title")).to_have_text("#general")

    # Its owner invites him: the room appears, and he reads it.
    alice.by("invite-input").fill("bob")
    alice.by("invite-submit").click()
    expect(alice.by("flash")).to_have_text("Invited bob to #design.")
    expect(bob.room("design")).to_have_count(1)
    expect(bob.by("flash")).to_have_text("alice invited you to #design.")
    bob.open(bob.room("design"), "#design")
    bob.expect_once("sketches coming", sender="alice")
    expect(bob.by("invite-form")).to_be_hidden()  # only the owner invites and removes

    # And removes him.
    expect(alice.member("bob")).to_have_count(1)
    alice.member("bob").get_by_test_id("member-remove").click()
    expect(bob.by("flash")).to_have_text("You were removed from #design.")
    expect(bob.room("design")).to_have_count(0)
    expect(bob.by("conversation-title")).to_have_text("#general")

    # The directory lists a public room with its topic; joining from it opens it.
    alice.by("browse-rooms").click()
    alice.by("create-name").fill("lobby")
    alice.by("create-topic").fill("say hi")
    alice.by("create-submit").click()
    expect(alice.by("conversation-title")).to_have_text("#lobby")
    bob.by("browse-rooms").click()
    lobby = bob.page.locator('[data-testid="directory-room"][data-room="lobby"]')
    expect(lobby.get_by_test_id("directory-topic")).to_have_text("say hi")
    expect(lobby.get_by_test_id("directory-members")).to_have_text("1 member")
    expect(bob.page.locator('[data-testid="directory-room"][data-room="design"]')).to_have_count(0)
    lobby.get_by_test_id("directory-join").click()
    expect(bob.by("directory")).to_be_hidden()
    expect(bob.by("conversation-title")).to_have_text("#lobby")
    expect(bob.member("alice")).to_have_count(1)


def test_a_muted_message_shows_the_reason_and_is_not_sent_again(
        server: ServerProcess, chat: Chats) -> None:
    alice = chat("alice")
    says: list[str] = []

    def watch(socket: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            if isinstance(payload, str) and '"type":"say"' in payload:
                says.append(payload)
        socket.on("framesent", sent)

    alice.page.on("websocket", watch)
    alice.page.reload()  # the socket opened after the listener
    alice.expect_connected()
    # An operator's mute, as the store keeps it.
    with sqlite3.connect(server.workdir / "data" / "imserver.db") as db:
        db.execute("INSERT INTO mutes (room, user_id, reason, until, muted_by, muted_at)"
                   " VALUES (?, ?, ?, NULL, 'test', ?)",
                   (ROOM, user_id_of(server, "alice"), "calm down a little", time.time()))
    alice.send("can I talk?")
    row = alice.rows_with("can I talk?")
    expect(row.locator(".message-marker")).to_have_text("Not sent (muted)")
    expect(row.locator(".message-error")).to_contain_text("calm down a little")
    expect(alice.by("flash")).to_contain_text("calm down a little")
    alice.page.wait_for_timeout(2_500)  # past the resend delay (2 s) of a passing refusal
    assert len(says) == 1, says


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(
        browser: Browser, server: ServerProcess, chat: Chats, scheme: Literal["light", "dark"]) -> None:
    """axe-core on the login page, and on the chat with what it can show at once."""
    def check(page: ChatPage, what: str) -> None:
        found = severe_violations(page.page)
        assert not found, f"{scheme}, {what}: {json.dumps(found, indent=1)}"

    login = ChatPage(browser, server, "nobody", bypass_csp=True)  # axe is an inline script
    try:
        login.page.emulate_media(color_scheme=scheme)
        login.page.goto(f"http://{server.host}/")
        expect(login.by("login-form")).to_be_visible()
        check(login, "login")
    finally:
        login.close()

    alice = chat("alice", bypass_csp=True)
    bob = chat("bob", bypass_csp=True)
    alice.page.emulate_media(color_scheme=scheme)
    bob.send("the guide is at https://example.com/guide")
    alice.send("helo")
    alice.edit("helo", "hello")
    bob.message("alice", "a word in private")
    expect(alice.dm("bob").get_by_test_id("unread")).to_have_text("1")
    bob.type_in("general", "typing")
    expect(alice.by("typing")).to_have_text("bob is typing…")
    check(alice, "chat")

    alice.by("browse-rooms").click()
    expect(alice.by("directory-list").locator('[data-testid="directory-room"]')).to_have_count(1)
    check(alice, "room directory")
    alice.by("directory-close").click()

    for action, what in (("message-edit", "the editor"),
                         ("message-delete", "the question before a deletion")):
        alice.expect_once("hello").get_by_test_id(action).click()
        check(alice, what)
        alice.page.keyboard.press("Escape")

    alice.context.set_offline(True)
    alice.send("pending while offline")
    expect(alice.rows_with("pending while offline")).to_have_attribute("data-pending", "true")
    check(alice, "a pending message, offline")


# ---- the server API ------------------------------------------------------------

class PythonListener:
    """An imserver.client ChatClient in a thread of its own (the sync Playwright of
    this module keeps asyncio out of the main thread), in one room, keeping the ids
    of the messages it hands on."""

    def __init__(self, server: ServerProcess, name: str, room: str) -> None:
        self.ids: list[int] = []
        self.joined = threading.Event()
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(server, name, room))
        self.thread.start()
        assert self.joined.wait(10), self.failure

    def _run(self, server: ServerProcess, name: str, room: str) -> None:
        async def listen() -> None:
            session = await client_login(f"http://{server.host}", name)
            on_event = lambda e: self.ids.append(e.id) if isinstance(e, ClientMessage) else None  # noqa: E731
            async with ChatClient(f"ws://{server.host}/ws", token=session.token,
                                  on_event=on_event) as client:
                await client.join(room)
                self.joined.set()
                while not self.stop.is_set():
                    await asyncio.sleep(0.05)
        try:
            asyncio.run(listen())
        except BaseException as exc:  # told to the test thread
            self.failure = exc
            self.joined.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert self.failure is None, self.failure


def publish(server: ServerProcess, room: str, text: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://{server.host}/api/v1/rooms/{room}/messages", method="POST",
        data=json.dumps({"text": text, "from": "bot:news", "name": "News"}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json",
                 "Idempotency-Key": key})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_a_publish_through_the_api_reaches_the_page_and_the_python_client_once(chat, server):
    alice = chat("alice")
    listener = PythonListener(server, "bot-reader", ROOM)
    try:
        status, first = publish(server, ROOM, "deploy finished", "deploy-77")
        retried, again = publish(server, ROOM, "deploy finished", "deploy-77")  # a retry
        assert (status, retried, again["id"], again["duplicate"]) == (201, 200, first["id"], True)
        row = alice.expect_once("deploy finished", sender="News")
        expect(row).to_have_attribute("data-id", str(first["id"]))
        wait_until(alice.page, lambda: first["id"] in listener.ids, "the Python client got it")
        time.sleep(0.3)  # a second copy would come right behind the first
        assert listener.ids.count(first["id"]) == 1
        expect(alice.rows_with("deploy finished")).to_have_count(1)
    finally:
        listener.close()

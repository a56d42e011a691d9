"""Presence is batched per room: one frame per window, and every view ends right."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import make_config

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True

WINDOW = 0.3


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, limits={"presence_interval": WINDOW})


async def presence_until(client, done, what: str, timeout: float = 10.0) -> list[dict]:
    """The presence frames a client gets, until the view they give satisfies `done`."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            frame = await client.recv(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got {frames}") from None
        if frame["type"] == "presence":
            frames.append(frame)
            if done(frames):
                return frames


async def drain_presence(client) -> list[dict]:
    """The presence frames sent to a client so far: a pong comes after all of them."""
    client.send("ping")
    frames = []
    while (raw := await client.recv_raw()) != "pong":
        assert raw is not None
        frame = json.loads(raw)
        if frame["type"] == "presence":
            frames.append(frame)
    return frames


def apply(view: set[str], frames: list[dict]) -> set[str]:
    for f in frames:
        view = (view | set(f["joined"])) - set(f["left"])
    return view


def seen(user_id: str):
    """done() for presence_until: a frame announced the join of `user_id`, so every
    window before it has been sent."""
    return lambda frames: user_id in frames[-1]["joined"]


def settled(chat, start: set[str], final: set[str]):
    """done() for presence_until. On one server: as seen(marker). Across two nodes the
    other node's changes come in their own time, so: the view has become `final`."""
    if len(chat.hosts) == 1:
        return seen(chat.id("marker"))
    return lambda frames: apply(start, frames) == final


async def view_of(chat, client, start: set[str], final: set[str]) -> set[str]:
    """A client's view, from `start` and the presence frames it got: all of them so
    far on one server; across two nodes, until it is `final` (or the time is up)."""
    if len(chat.hosts) == 1:
        return apply(start, await drain_presence(client))
    if start == final:
        return start
    return apply(start, await presence_until(client, lambda f: apply(start, f) == final,
                                             "the view to settle"))


@pytest.mark.gen_test(timeout=60)
async def test_many_joins_in_one_window_cost_one_frame_each(chat):
    observer = await chat.connect("observer")
    await observer.join("lobby")
    clients = [await chat.connect(f"u{i}") for i in range(20)]
    started = time.monotonic()
    for c in clients:
        c.send({"type": "join", "room": "lobby"})
    joined = [await c.expect("joined") for c in clients]
    spread = time.monotonic() - started  # every join took effect within this span
    marker = await chat.connect("marker")  # its join lands in the last window: seen, all are sent
    await marker.join("lobby")
    final = {chat.id("observer"), chat.id("marker")} | {chat.id(f"u{i}") for i in range(20)}
    frames = await presence_until(observer, settled(chat, {chat.id("observer")}, final),
                                  "the marker's join")
    # One frame per window, not one per join: the joins' windows, and maybe the marker's
    # (across nodes, the other node's changes may take a window more).
    assert 1 <= len(frames) <= spread / WINDOW + len(chat.hosts) + 1, (len(frames), spread)
    assert apply({chat.id("observer")}, frames) == final
    # Each joiner's view (its member list, then the frames it got) ends at the room as it is.
    for c, j in zip(clients, joined, strict=True):
        assert await view_of(chat, c, set(j["members"]), final) == final


@pytest.mark.gen_test(timeout=60)
async def test_join_then_leave_within_a_window_is_sent_as_left(chat):
    observer, early = await chat.connect("observer"), await chat.connect("early")
    await observer.join("r")
    early.send({"type": "join", "room": "r"})
    ghost = await chat.connect("ghost")
    await ghost.join("r")
    await early.expect("joined")
    ghost.send({"type": "leave", "room": "r"})
    await ghost.expect("left")
    marker = await chat.connect("marker")
    await marker.join("r")
    observer_id, early_id, ghost_id, marker_id = (
        chat.id(n) for n in ("observer", "early", "ghost", "marker"))
    final = {observer_id, early_id, marker_id}
    frames = await presence_until(observer, settled(chat, {observer_id}, final),
                                  "the marker's join")
    assert apply({observer_id}, frames) == final
    early_view = await view_of(chat, early, {observer_id, early_id, ghost_id}, final)
    assert early_view == final

"""Presence is batched per room: one frame per window, and every view ends right."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import make_config

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
    frames = await presence_until(observer, seen(chat.id("marker")), "the marker's join")
    # One frame per window, not one per join: the joins' windows, and maybe the marker's.
    assert 1 <= len(frames) <= spread / WINDOW + 2, (len(frames), spread)
    final = {chat.id("observer"), chat.id("marker")} | {chat.id(f"u{i}") for i in range(20)}
    assert apply({chat.id("observer")}, frames) == final
    # Each joiner's view (its member list, then the frames it got) ends at the room as it is.
    for c, j in zip(clients, joined, strict=True):
        assert apply(set(j["members"]), await drain_presence(c)) == final


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
    frames = await presence_until(observer, seen(chat.id("marker")), "the marker's join")
    observer_id, early_id, ghost_id, marker_id = (
        chat.id(n) for n in ("observer", "early", "ghost", "marker"))
    assert apply({observer_id}, frames) == {observer_id, early_id, marker_id}
    early_view = apply({observer_id, early_id, ghost_id}, await drain_presence(early))
    assert early_view == {observer_id, early_id, marker_id}

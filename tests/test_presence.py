"""Presence is batched per room: one frame per window, and every view ends right."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import make_config

WINDOW = 0.3


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, limits={"presence_interval": WINDOW})


async def collect_presence(client, seconds: float) -> list[dict]:
    frames = []
    try:
        while True:
            frame = await client.recv(seconds)
            if frame["type"] == "presence":
                frames.append(frame)
    except TimeoutError:
        return frames


def apply(view: set[str], frames: list[dict]) -> set[str]:
    for f in frames:
        view = (view | set(f["joined"])) - set(f["left"])
    return view


@pytest.mark.gen_test(timeout=20)
async def test_many_joins_in_one_window_cost_one_frame_each(chat):
    observer = await chat.connect("observer")
    await observer.join("lobby")
    await asyncio.sleep(WINDOW * 1.5)  # let the observer's own join window pass
    clients = [await chat.connect(f"u{i}") for i in range(20)]
    for c in clients:
        c.send({"type": "join", "room": "lobby"})
    joined = [await c.expect("joined") for c in clients]
    frames = await collect_presence(observer, WINDOW * 3)
    assert 1 <= len(frames) <= 2  # one per window, not one per join
    final = {chat.id("observer")} | {chat.id(f"u{i}") for i in range(20)}
    assert apply({chat.id("observer")}, frames) == final
    # Each joiner's view (its member list, then the frames it got) ends at the room as it is.
    for c, j in zip(clients, joined, strict=True):
        assert apply(set(j["members"]), await collect_presence(c, 0.05)) == final


@pytest.mark.gen_test(timeout=20)
async def test_join_then_leave_within_a_window_is_sent_as_left(chat):
    observer, early = await chat.connect("observer"), await chat.connect("early")
    await observer.join("r")
    await asyncio.sleep(WINDOW * 1.5)
    early.send({"type": "join", "room": "r"})
    ghost = await chat.connect("ghost")
    await ghost.join("r")
    await early.expect("joined")
    ghost.send({"type": "leave", "room": "r"})
    await ghost.expect("left")
    frames = await collect_presence(observer, WINDOW * 3)
    observer_id, early_id, ghost_id = chat.id("observer"), chat.id("early"), chat.id("ghost")
    assert apply({observer_id}, frames) == {observer_id, early_id}
    early_view = apply({observer_id, early_id, ghost_id}, await collect_presence(early, 0.05))
    assert early_view == {observer_id, early_id}

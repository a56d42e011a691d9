"""Recovery past its limit: the join says `truncated` and gives the latest page."""

from __future__ import annotations

import pytest

from tests.conftest import make_config

# The chat tests run against one server and against two nodes of a cluster.
CLUSTER_TOO = True


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, limits={"recovery_limit": 3, "history_page": 2})


@pytest.mark.gen_test
async def test_join_since_past_the_recovery_limit_is_truncated(chat):
    alice = await chat.connect("alice")
    await alice.join("r")
    ids = []
    for i in range(6):
        alice.send({"type": "say", "room": "r", "text": f"m{i}", "cid": f"c{i}"})
        ids.append((await alice.expect("ack"))["id"])
    bob = await chat.connect("bob")
    within = await bob.join("r", since=ids[2])
    assert [m["id"] for m in within["messages"]] == ids[3:] and within["truncated"] is False
    too_far = await bob.join("r", since=ids[1])
    assert [m["id"] for m in too_far["messages"]] == ids[-2:] and too_far["truncated"] is True


@pytest.mark.gen_test
async def test_dm_sync_past_the_recovery_limit_is_truncated(chat):
    alice, bob = await chat.connect("alice"), await chat.connect("bob")
    ids = []
    for i in range(5):
        alice.send({"type": "dm", "to": "bob", "text": f"d{i}", "cid": f"d{i}"})
        ids.append((await alice.expect("ack"))["id"])
        await bob.expect("message")
    bob.send({"type": "dm_sync", "since": ids[0]})
    sync = await bob.expect("dm_sync")
    assert [m["id"] for m in sync["messages"]] == ids[-2:] and sync["truncated"] is True
    bob.send({"type": "dm_sync"})
    latest = await bob.expect("dm_sync")
    assert [m["id"] for m in latest["messages"]] == ids[-2:] and latest["truncated"] is False

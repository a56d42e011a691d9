"""The client's bookkeeping without sockets: each stream's items once and in order, the backoff."""

from __future__ import annotations

import pytest

from imserver.client import Policy, backoff_ceiling, backoff_delay
from imserver.client.streams import Stream


def item(i: int, **extra: object) -> dict[str, object]:
    return {"type": "message", "id": i, **extra}


def ids(items: list[dict[str, object]]) -> list[object]:
    return [i["id"] for i in items]


def test_live_items_wait_for_the_recovery_answer_and_merge_with_it_once_in_order() -> None:
    stream = Stream(since=10)
    stream.new_socket()
    # Direct messages flow live before the dm_sync answer, which holds them too.
    assert stream.live(item(14)) == [] and stream.live(item(15)) == []
    handed = stream.recovered([item(11), item(14), item(12)])  # its snapshot predates 15
    assert [(i["id"], backlog) for i, backlog in handed] == [
        (11, True), (12, True), (14, True), (15, False)]
    assert stream.repeats == 1 and stream.highest == 15
    assert ids(stream.live(item(16))) == [16]
    assert stream.live(item(16)) == [] and stream.live(item(13)) == []  # a repeat, an older one
    assert stream.repeats == 3


def test_a_new_socket_holds_live_items_again_and_recovers_after_the_position() -> None:
    stream = Stream()
    stream.new_socket()
    assert [i["id"] for i, _ in stream.recovered([item(3), item(4)])] == [3, 4]
    stream.new_socket()
    assert stream.live(item(9)) == []
    assert stream.highest == 4  # the next `since`: nothing held counts before its page
    assert [i["id"] for i, _ in stream.recovered([item(5), item(9)])] == [5, 9]


def test_own_acked_items_are_passed_over_when_a_recovery_brings_them_back() -> None:
    stream = Stream(since=1)
    stream.new_socket()
    stream.recovered([])
    stream.mark_own(3)
    stream.mark_own(1)  # at or below the position: nothing to pass over
    stream.new_socket()
    handed = stream.recovered([item(2), item(3), item(4)])
    assert [i["id"] for i, _ in handed] == [2, 4] and stream.highest == 4


def test_backoff_grows_to_the_cap_with_full_jitter() -> None:
    policy = Policy(base=0.5, factor=2, cap=3)
    assert [backoff_ceiling(n, policy) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
    assert backoff_ceiling(100_000, policy) == 3  # 2 ** 99_999 overflows a float
    assert backoff_delay(3, policy, lambda: 0.0) == 0
    assert backoff_delay(3, policy, lambda: 0.5) == 1
    with pytest.raises(ValueError, match="attempt"):
        backoff_ceiling(0, policy)


@pytest.mark.parametrize("field, value", [("base", 0), ("factor", 0.5), ("cap", -1),
                                          ("connect_timeout", 0), ("attempts", -1),
                                          ("stable_after", float("inf"))])
def test_a_bad_policy_names_its_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Policy(**{field: value})

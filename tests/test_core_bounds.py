"""Limits at their exact bounds: the last value accepted and the first one refused.

Protocol limits (cid length, JSON depth), every ranged setting of the config,
the rate limiters' edges, the frame parser after a fragmented message, and a
store used after it closed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from imserver.config import config_from_dict
from imserver.core import protocol as p
from imserver.core.errors import ConfigError, ProtocolError, StoreError
from imserver.core.frames import text_frame
from imserver.core.ratelimit import FloodGuard, KeyedLimiter, TokenBucket
from imserver.storage.sqlite import MessageStore
from imserver.transport.parser import FrameParser
from tests.core import run
from tests.store_reads import count

# In-process tests take milliseconds: one that hangs (a fault in the store's close, say)
# is stopped after 30 s rather than the suite's 180.
pytestmark = pytest.mark.timeout(30)


def parse(frame: dict[str, Any] | str, *, max_text_chars: int = 100, max_depth: int = 8) -> p.Command:
    raw = frame if isinstance(frame, str) else json.dumps(frame)
    return p.parse_frame(raw, max_text_chars=max_text_chars, max_depth=max_depth)


def refused(frame: dict[str, Any] | str, **kw: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(frame, **kw)
    return info.value


# --- protocol ---

def test_a_cid_of_exactly_the_maximum_length_is_accepted_and_one_more_is_refused():
    assert p.CID_MAX == 128
    say = {"type": "say", "room": "r", "text": "hi"}
    assert parse({**say, "cid": "c" * 128}) == p.Say("r", "hi", "c" * 128)
    assert parse({**say, "cid": "c"}) == p.Say("r", "hi", "c")
    for bad in ("c" * 129, "", "tab\there", 7):
        error = refused({**say, "cid": bad})
        assert error.code == "bad_request"
        assert error.message == "cid must be a printable string of 1-128 characters"
    dm = {"type": "dm", "to": "bob", "text": "hi"}
    assert parse({**dm, "cid": "d" * 128}) == p.DirectMessage("bob", "hi", "d" * 128)
    assert refused({**dm, "cid": "d" * 129}).cid == "d" * 129  # the client can still match it


def test_text_of_exactly_the_maximum_length_is_accepted():
    assert parse({"type": "say", "room": "r", "text": "x" * 100}).text == "x" * 100  # type: ignore[union-attr]
    error = refused({"type": "say", "room": "r", "text": "x" * 101, "cid": "k"})
    assert (error.code, error.message, error.cid) == ("too_long", "text is longer than 100 characters", "k")
    assert refused({"type": "say", "room": "r", "text": " \n\t "}).message == "text must not be empty"


def test_wide_but_shallow_json_is_accepted():
    wide = {"type": "say", "room": "r", "text": "hi", "x": [[i] for i in range(50)], "y": [{}] * 50}
    assert parse(wide) == p.Say("r", "hi", None)
    assert p.too_deep(json.dumps(wide), 8) is False


def test_json_of_exactly_the_maximum_depth_is_accepted_and_one_deeper_is_refused():
    def nested(depth: int) -> str:  # the frame object itself is the first level
        return '{"type":"dm_sync","x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"

    assert parse(nested(8), max_depth=8) == p.DmSync(None)
    assert p.too_deep(nested(9), 8)
    error = refused(nested(9), max_depth=8)
    assert (error.code, error.message) == ("bad_request", "JSON nested deeper than 8 levels")
    assert parse(nested(3), max_depth=3) == p.DmSync(None)
    assert p.too_deep(nested(4), 3)


def test_brackets_inside_strings_are_not_nesting_and_closed_brackets_reset_the_depth():
    text = "[[[[{{{{" * 4
    assert parse({"type": "say", "room": "r", "text": text}) == p.Say("r", text, None)
    assert p.too_deep(json.dumps({"type": "say", "room": "r", "text": text}), 8) is False
    assert not p.too_deep('{"a":[[[]]],"b":[[[]]],"c":[[[]]]}', 4)
    assert p.too_deep('{"a":[[[[]]]]}', 4)
    assert not p.too_deep('{"s":"\\"[[[[[[[[[["}', 2)  # an escaped quote does not end the string


def test_ids_and_names_at_their_bounds():
    assert parse({"type": "join", "room": "r" * 64}) == p.Join("r" * 64, None)
    assert refused({"type": "join", "room": "r" * 65}).code == "bad_request"
    assert parse({"type": "join", "room": "r", "since": 0}) == p.Join("r", 0)
    assert parse({"type": "join", "room": "r", "since": 2**63 - 1}) == p.Join("r", 2**63 - 1)
    for bad in (-1, True, 1.5, "3", 2**63):
        assert refused({"type": "join", "room": "r", "since": bad}).message == \
            "since must be an integer from 0 to 9223372036854775807"
    assert parse({"type": "history", "with": "u" * 64}) == p.History(None, "u" * 64, None, None)
    assert refused({"type": "history", "with": "u" * 65}).message == "with must be a user name"
    assert parse({"type": "history", "room": "r", "limit": 0, "before": 5}) == p.History("r", None, 5, 0)
    assert refused({"type": "dm", "to": 5, "text": "x"}).message == "to must be a user name"
    assert p.valid_name("n" * 32) and not p.valid_name("n" * 33) and not p.valid_name(5)
    assert p.valid_user_id("a|b@c:d+e") and not p.valid_user_id(None)


def test_frames_that_are_not_commands():
    assert refused("[1]").message == "frame must be a JSON object"
    assert refused("{").message == "frame is not valid JSON"
    assert refused({"type": 5}).message == "frame has no type"
    assert refused({"type": "x" * 40}).message == f"unknown type {'x' * 32!r}"
    assert refused({"room": "r"}).message == "frame has no type"


def test_error_frames_and_clean_text():
    assert p.error_frame("a", "b") == {"type": "error", "code": "a", "message": "b"}
    assert p.error_frame("a", "b", "c") == {"type": "error", "code": "a", "message": "b", "cid": "c"}
    assert p.clean_text("a\x00b\nc\td\x7f") == "ab\nc\td"
    assert p.clean_text("plain") == "plain"
    assert p.encode({"a": "é"}) == '{"a":"é"}'
    assert p.reconnect_cause("watchdog") == "watchdog" and p.reconnect_cause(None) == "other"
    assert (p.CLOSE_GOING_AWAY, p.CLOSE_TOO_BIG) == (1001, 1009)
    assert p.CLOSE_INTERNAL_ERROR == 1011
    assert (p.CLOSE_UNAUTHENTICATED, p.CLOSE_KICKED, p.CLOSE_RATE_LIMITED) == (4001, 4003, 4008)


# --- config ---

# (key, the bound, the kind of bound, other settings the check needs)
BOUNDS: list[tuple[str, float, str, dict[str, Any]]] = [
    ("server.port", 0, "ge", {}), ("server.port", 65535, "le", {}),
    ("server.send_threads", 0, "ge", {}), ("server.send_threads", 64, "le", {}),
    ("auth.token_ttl_seconds", 0, "gt", {}),
    ("heartbeat.ping_interval", 0, "gt", {}), ("heartbeat.ping_timeout", 0, "gt", {}),
    ("heartbeat.client_interval", 0, "gt", {}),
    ("heartbeat.client_timeout", 0, "gt", {"heartbeat.client_interval": 0.0001}),
    ("shutdown.spread_seconds", 0, "ge", {}), ("shutdown.retry_min_seconds", 0, "ge", {}),
    ("shutdown.grace_seconds", 0, "ge", {}),
    ("limits.max_frame_bytes", 256, "ge", {}), ("limits.max_text_chars", 1, "ge", {}),
    ("limits.max_json_depth", 2, "ge", {}), ("limits.max_json_depth", 64, "le", {}),
    ("limits.presence_interval", 0, "ge", {}), ("limits.presence_interval", 10, "le", {}),
    ("limits.history_page", 1, "ge", {}), ("limits.history_page", 1000, "le", {}),
    ("limits.recovery_limit", 1, "ge", {}), ("limits.recovery_limit", 100_000, "le", {}),
    ("limits.max_connections", 0, "ge", {}), ("limits.max_connections_per_user", 1, "ge", {}),
    ("limits.max_connections_per_address", 1, "ge", {}),
    ("limits.max_rooms_per_connection", 1, "ge", {}),
    ("limits.login_attempts_per_minute", 0, "gt", {}), ("limits.messages_per_second", 0, "gt", {}),
    ("limits.burst", 1, "ge", {}), ("limits.flood_strikes", 1, "ge", {}),
    ("limits.max_outbound_buffer_bytes", 65536, "ge", {}),
    ("storage.max_age_days", 0, "ge", {}), ("storage.max_messages_per_room", 0, "ge", {}),
    ("storage.retention_interval_seconds", 0, "gt", {}), ("storage.batch_max", 1, "ge", {}),
    ("storage.health_deadline_seconds", 0, "gt", {}),
    ("limits.header_timeout_seconds", 0, "gt", {}), ("limits.idle_timeout_seconds", 0, "gt", {}),
    ("limits.body_timeout_seconds", 0, "gt", {}), ("limits.max_body_bytes", 1024, "ge", {}),
    ("limits.max_pending_per_address", 1, "ge", {}), ("limits.max_pending_connections", 1, "ge", {}),
    ("client.reconnect_base_seconds", 0, "gt", {}), ("client.reconnect_factor", 1, "ge", {}),
    ("client.reconnect_cap_seconds", 0, "gt", {"client.reconnect_base_seconds": 0.0001}),
    ("client.reconnect_attempts", 1, "ge", {}), ("client.stable_after_seconds", 0, "ge", {}),
    ("client.connect_timeout_seconds", 0, "gt", {}), ("client.outbox_limit", 1, "ge", {}),
]
INT_KEYS = {"server.port", "server.send_threads", "limits.max_frame_bytes", "limits.max_text_chars",
            "limits.max_json_depth", "limits.history_page", "limits.recovery_limit",
            "limits.max_connections", "limits.max_connections_per_user",
            "limits.max_connections_per_address", "limits.max_rooms_per_connection", "limits.burst",
            "limits.flood_strikes", "limits.max_outbound_buffer_bytes", "storage.max_messages_per_room",
            "limits.max_body_bytes", "limits.max_pending_per_address", "limits.max_pending_connections",
            "storage.batch_max", "client.reconnect_attempts", "client.outbox_limit"}


def settings(values: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in values.items():
        section, name = key.split(".")
        data.setdefault(section, {})[name] = value
    return data


def read(config: Any, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


@pytest.mark.parametrize(("key", "bound", "kind", "extra"), BOUNDS, ids=[f"{b[0]}-{b[2]}" for b in BOUNDS])
def test_every_ranged_setting_at_its_bound(key, bound, kind, extra):
    step = 1 if key in INT_KEYS else 0.001
    if kind == "gt":
        accepted, past, symbol = bound + step, bound, ">"
    elif kind == "ge":
        accepted, past, symbol = bound, bound - step, ">="
    else:
        accepted, past, symbol = bound, bound + step, "<="
    assert read(config_from_dict(settings({**extra, key: accepted})), key) == accepted
    with pytest.raises(ConfigError) as info:
        config_from_dict(settings({**extra, key: past}))
    assert str(info.value) == f"{key} must be {symbol} {bound}, got {past}"


def test_ping_timeout_zero_is_refused():
    with pytest.raises(ConfigError, match=r"^heartbeat.ping_timeout must be > 0, got 0$"):
        config_from_dict({"heartbeat": {"ping_timeout": 0}})


def test_reconnect_cap_below_base_is_refused_and_equal_is_accepted():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"client": {"reconnect_base_seconds": 5, "reconnect_cap_seconds": 4.99}})
    assert str(info.value) == ("client.reconnect_cap_seconds must be >= client.reconnect_base_seconds "
                               "(5.0), got 4.99")
    config = config_from_dict({"client": {"reconnect_base_seconds": 5, "reconnect_cap_seconds": 5}})
    assert config.client.reconnect_cap_seconds == 5.0


def test_client_timeout_must_exceed_client_interval():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"heartbeat": {"client_interval": 3, "client_timeout": 3}})
    assert str(info.value) == "heartbeat.client_timeout must be > heartbeat.client_interval (3.0), got 3.0"
    config = config_from_dict({"heartbeat": {"client_interval": 3, "client_timeout": 3.5}})
    assert config.heartbeat.client_timeout == 3.5


def test_settings_of_the_wrong_type_are_refused():
    cases = [
        ({"server": {"port": True}}, "server.port must be a whole number, got True"),
        ({"server": {"port": 1.5}}, "server.port must be a whole number, got 1.5"),
        ({"heartbeat": {"ping_interval": "1"}}, "heartbeat.ping_interval must be a number, got '1'"),
        ({"heartbeat": {"ping_interval": False}}, "heartbeat.ping_interval must be a number, got False"),
        ({"heartbeat": {"ping_interval": float("inf")}}, "heartbeat.ping_interval must be a number, got inf"),
        ({"server": {"xheaders": 1}}, "server.xheaders must be true or false, got 1"),
        ({"server": {"host": 1}}, "server.host must be a string, got 1"),
        ({"server": {"allowed_origins": "x"}}, "server.allowed_origins must be a list, got 'x'"),
        ({"server": {"allowed_origins": [1]}}, "server.allowed_origins[0] must be a string, got 1"),
        ({"server": []}, "server must be a mapping of settings, got []"),
        ([], "the config file must be a mapping of settings, got []"),
        ({"server": {"fanout": "x"}}, "server.fanout is not a known setting"),
        ({"server": {"nope": 1, "also": 2}}, "server.also is not a known setting"),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError) as info:
            config_from_dict(data)
        assert str(info.value) == message
    config = config_from_dict({"heartbeat": {"ping_interval": 3}, "server": {"allowed_origins": ["a"]}})
    assert config.heartbeat.ping_interval == 3.0 and isinstance(config.heartbeat.ping_interval, float)
    assert config.server.allowed_origins == ("a",)


def test_jwt_mode_needs_its_key():
    with pytest.raises(ConfigError, match=r"auth\.jwt\.secret must be set"):
        config_from_dict({"auth": {"mode": "jwt"}})
    with pytest.raises(ConfigError, match=r"auth\.jwt\.public_key_file must be set"):
        config_from_dict({"auth": {"mode": "jwt", "jwt": {"algorithm": "RS256"}}})
    assert config_from_dict({"auth": {"mode": "jwt", "jwt": {"secret": "s"}}}).auth.jwt.secret == "s"
    assert config_from_dict({"auth": {"jwt": {"algorithm": "RS256"}}}).auth.mode == "guest"


# --- rate limits ---

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_per_address_limiter_evicts_the_least_recently_used_address():
    clock = Clock()
    limiter = KeyedLimiter(rate=0.001, burst=1, max_keys=2, clock=clock)
    assert limiter.take("a") and limiter.take("b")
    assert not limiter.take("a")  # spent; and now "a" is the most recently used
    assert limiter.take("c")  # a third address: "b", the least recently used, is forgotten
    assert not limiter.take("a")  # still remembered, still spent
    assert limiter.take("b")  # forgotten: a fresh bucket; "c" is now the least recently used
    assert limiter.take("c")  # so it was forgotten in turn
    assert not limiter.take("b")


def test_the_per_address_limiter_remembers_exactly_max_keys():
    clock = Clock()
    limiter = KeyedLimiter(rate=0.001, burst=1, max_keys=3, clock=clock)
    for key in "abc":
        assert limiter.take(key)
    for key in "abc":
        assert not limiter.take(key)  # all three remembered
    assert limiter.take("d")
    assert limiter.take("a")  # the oldest of the four was forgotten


def test_the_per_address_limiter_remembers_ten_thousand_addresses_by_default():
    clock = Clock()
    limiter = KeyedLimiter(rate=0.001, burst=1, clock=clock)
    for i in range(10_000):
        assert limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert not limiter.take("10.0.0.0")  # the first is still remembered, and is now the newest
    assert limiter.take("192.0.2.1")  # one more: the least recently used ("10.0.0.1") goes
    assert limiter.take("10.0.0.1")  # forgotten, so fresh (and "10.0.0.2" goes in turn)
    assert not limiter.take("10.0.0.3")  # still remembered


def test_a_token_bucket_refills_at_its_rate_up_to_its_burst():
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token
    assert bucket.take() and not bucket.take()
    clock.now += 0.25  # half a token: not enough
    assert not bucket.take()
    clock.now += 0.25  # the other half
    assert bucket.take()
    clock.now += 100  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.take(now=clock.now + 0.5)  # a caller's own reading of the clock


def test_a_flood_guard_counts_in_two_second_windows_by_default():
    clock = Clock()
    guard = FloodGuard(limit=2, clock=clock)
    assert not guard.strike()
    clock.now += 1.5
    assert guard.strike()
    clock.now += 0.5  # two seconds after the window began
    assert not guard.strike()


def test_a_flood_guard_strikes_at_its_limit_within_one_window():
    clock = Clock()
    guard = FloodGuard(limit=3, window=2.0, clock=clock)
    assert [guard.strike(), guard.strike()] == [False, False]
    clock.now += 1.5
    assert guard.strike()
    clock.now += 0.5  # exactly one window after it began: a new window
    assert not guard.strike()
    assert not guard.strike()
    assert guard.strike()


# --- framing and the store ---

def frame(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if final else 0) | opcode, 0x80 | len(payload)]) + mask + masked


def test_an_unmasked_empty_frame_alone_is_a_whole_message():
    parser = FrameParser(10)
    assert parser.feed(b"\x81\x00") == [(0x1, b"")]
    assert parser.feed(b"\x81") == []
    assert parser.feed(b"\x00\x8a\x00") == [(0x1, b""), (0xA, b"")]


def test_after_a_fragmented_message_the_next_messages_are_accepted():
    parser = FrameParser(1000)
    stream = (frame(0x1, b"hel", final=False) + frame(0x0, b"lo") + frame(0x1, b"next")
              + frame(0x2, b"ab", final=False) + frame(0x9, b"p") + frame(0x0, b"cd", final=False)
              + frame(0x0, b"ef") + frame(0x1, b"last"))
    assert parser.feed(stream) == [(0x1, b"hello"), (0x1, b"next"), (0x9, b"p"), (0x2, b"abcdef"),
                                   (0x1, b"last")]
    assert parser.error is None
    assert parser.feed(frame(0x1, b"again", final=False)) == []
    assert parser.feed(frame(0x0, b"!")) == [(0x1, b"again!")]
    assert parser.feed(frame(0x1, b"then")) == [(0x1, b"then")]
    assert parser.error is None


def test_a_64_bit_length_header_split_anywhere_waits_for_the_rest():
    payload = b"z" * 70_000
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    wire = bytes([0x81, 0x80 | 127]) + len(payload).to_bytes(8, "big") + mask + masked
    for cut in range(1, 15):
        parser = FrameParser(100_000)
        assert parser.feed(wire[:cut]) == []
        assert parser.feed(wire[cut:]) == [(0x1, payload)]
        assert parser.error is None


def test_outbound_frames_at_each_length_form_boundary_parse_back():
    for size, header in [(125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"),
                         (65535, b"\x81\x7e\xff\xff"), (65536, b"\x81\x7f" + (65536).to_bytes(8, "big"))]:
        payload = b"p" * size
        wire = text_frame(payload)
        assert wire == header + payload
        assert FrameParser(1 << 20).feed(wire) == [(0x1, payload)]


def test_a_message_of_exactly_the_maximum_size_is_accepted_even_in_fragments():
    parser = FrameParser(10)
    assert parser.feed(frame(0x1, b"x" * 10)) == [(0x1, b"x" * 10)]
    assert parser.feed(frame(0x1, b"x" * 4, final=False) + frame(0x0, b"y" * 6)) == [(0x1, b"xxxxyyyyyy")]
    assert parser.error is None
    assert parser.feed(frame(0x1, b"x" * 11)) == [] and parser.error is not None


def test_a_store_refuses_work_after_it_closed():
    async def scenario() -> None:
        store = MessageStore(":memory:")
        await store.append_room("a", "r", "hi", None)
        await store.close()
        await store.close()  # twice is fine
        # Answered as unavailable (a frame or an upgrade still on its way at shutdown):
        with pytest.raises(StoreError, match="message store is closed"):
            await store.append_room("a", "r", "late", None)
        with pytest.raises(StoreError, match="message store is closed"):
            await count(store)

    run(scenario())


def test_a_store_never_used_closes():
    async def scenario() -> None:
        store = MessageStore(":memory:")
        await store.close()
        with pytest.raises(StoreError):
            await store.room_before("r", None, 1)

    run(scenario())

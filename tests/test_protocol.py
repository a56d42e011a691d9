"""The protocol module: parsing client frames, without sockets."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from imserver.core import protocol as p
from imserver.core.errors import ProtocolError


def parse(frame):
    return p.parse_frame(json.dumps(frame) if not isinstance(frame, str) else frame, max_text_chars=10)


def test_parses_every_command():
    assert parse({"type": "join", "room": "general", "since": 12}) == p.Join("general", 12)
    assert parse({"type": "join", "room": "a.b-c_D9"}) == p.Join("a.b-c_D9", None)
    assert parse({"type": "leave", "room": "general"}) == p.Leave("general")
    assert parse({"type": "say", "room": "r", "text": "hi", "cid": "c1"}) == p.Say("r", "hi", "c1")
    assert parse({"type": "say", "room": "r", "text": "hi"}) == p.Say("r", "hi", None)
    assert parse({"type": "dm", "to": "bob", "text": "yo", "cid": "c"}) == p.DirectMessage("bob", "yo", "c")
    assert parse({"type": "history", "room": "r", "before": 5, "limit": 2}) == p.History("r", None, 5, 2)
    assert parse({"type": "history", "with": "bob"}) == p.History(None, "bob", None, None)
    assert parse({"type": "dm_sync", "since": 3}) == p.DmSync(3)
    assert parse({"type": "dm_sync"}) == p.DmSync(None)


@pytest.mark.parametrize(("frame", "code"), [
    ("nope", "bad_request"),
    ("null", "bad_request"),
    ({"type": 7}, "bad_request"),
    ({"type": "join"}, "bad_request"),
    ({"type": "join", "room": ""}, "bad_request"),
    ({"type": "join", "room": "r" * 65}, "bad_request"),
    ({"type": "join", "room": "a/b"}, "bad_request"),
    ({"type": "join", "room": "r", "since": -1}, "bad_request"),
    ({"type": "join", "room": "r", "since": True}, "bad_request"),
    ({"type": "join", "room": "r", "since": 1.5}, "bad_request"),
    ({"type": "say", "room": "r"}, "bad_request"),
    ({"type": "say", "room": "r", "text": 5}, "bad_request"),
    ({"type": "say", "room": "r", "text": "   "}, "bad_request"),
    ({"type": "say", "room": "r", "text": "\x00\x07"}, "bad_request"),
    ({"type": "say", "room": "r", "text": "x" * 11}, "too_long"),
    ({"type": "say", "room": "r", "text": "hi", "cid": ""}, "bad_request"),
    ({"type": "say", "room": "r", "text": "hi", "cid": "x" * 129}, "bad_request"),
    ({"type": "say", "room": "r", "text": "hi", "cid": 5}, "bad_request"),
    ({"type": "dm", "to": "a b", "text": "hi"}, "bad_request"),
    ({"type": "history", "with": ""}, "bad_request"),
    ({"type": "history", "room": "r", "limit": "all"}, "bad_request"),
])
def test_bad_frames_raise_protocol_errors(frame, code):
    with pytest.raises(ProtocolError) as info:
        parse(frame)
    assert info.value.code == code and info.value.message


def test_error_keeps_the_cid_so_the_client_can_match_it():
    with pytest.raises(ProtocolError) as info:
        parse({"type": "say", "room": "r", "text": "x" * 11, "cid": "abc"})
    assert info.value.cid == "abc"


def test_deep_nesting_is_refused_before_decoding():
    with pytest.raises(ProtocolError, match="nested deeper"):
        p.parse_frame("[" * 10_000 + "]" * 10_000, max_text_chars=10)
    # brackets inside strings do not count
    assert parse({"type": "say", "room": "r", "text": "[[[[[[[[[["}).text == "[[[[[[[[[["


def test_text_is_cleaned_of_control_characters_and_lone_surrogates():
    frame = '{"type": "say", "room": "r", "text": "a\\u0000b\\ud800c\\nd\\te"}'
    assert parse(frame).text == "abc\nd\te"
    assert p.encode({"text": parse(frame).text}).encode("utf-8")


def test_reconnect_cause_labels():
    for cause in ("close", "error", "watchdog", "network", "shutdown"):
        assert p.reconnect_cause(cause) == cause
    assert p.reconnect_cause("gremlins") == "other"
    assert p.reconnect_cause(None) == "other"


def test_error_frame():
    assert p.error_frame("too_long", "m", "c") == {"type": "error", "code": "too_long",
                                                  "message": "m", "cid": "c"}
    assert "cid" not in p.error_frame("bad_request", "m")


@pytest.mark.parametrize("frame", [
    {"type": "message", "id": 12, "from": "alice", "room": "r", "text": "héllo 👋 \"q\" \\ \n",
     "ts": 1764140000.123, "cid": "c"},
    {"type": "joined", "room": "r", "members": [], "messages": [], "truncated": False},
    {"type": "welcome", "heartbeat": {"interval": 10.0, "timeout": 20.0}, "server_time": 0.5},
])
def test_fast_and_standard_json_encode_alike(frame):
    assert p.encode_bytes(frame) == p._std_encode_bytes(frame)
    assert p.loads(p.encode(frame)) == frame


# --- one table of commands, one module for the wire ---


def test_the_command_table_drives_parsing_dispatch_and_metric_labels():
    from imserver.core.hub import Hub
    from imserver.ops.metrics import MESSAGE_TYPES

    kinds = [command.kind for command in p.COMMANDS]
    assert len(set(kinds)) == len(kinds)
    assert ("ping", *kinds, "invalid") == MESSAGE_TYPES
    for command in p.COMMANDS:
        assert p.COMMAND_BY_KIND[command.kind] is command
        assert callable(getattr(Hub, p.handler_name(command))), f"the hub has no method for {command.kind!r}"
    frames = {"join": {"room": "r"}, "leave": {"room": "r"}, "say": {"room": "r", "text": "t"},
              "dm": {"to": "bob", "text": "t"}, "history": {"room": "r"}, "dm_sync": {},
              "rooms": {}, "create": {"room": "r"}, "invite": {"room": "r", "user": "bob"},
              "remove": {"room": "r", "user": "bob"}, "read": {"room": "r", "id": 1},
              "typing": {"room": "r"}, "edit": {"room": "r", "target": 1, "text": "t"},
              "delete": {"target": 1}, "refresh": {"token": "t"}}
    assert set(frames) == set(kinds)
    for kind, fields in frames.items():
        command = p.parse_frame(json.dumps({"type": kind, **fields}), max_text_chars=100)
        assert command.kind == kind


def test_server_frames_are_built_only_in_the_protocol_module():
    """A dict literal with a "type" key is a frame: the chat's are built in protocol.py
    (the admin dashboard's channel has its own, in http/adminview.py; the API's OpenAPI
    document has JSON Schema types, not frames; the Python client, in client/, builds
    the frames of the other direction)."""
    package = Path(__file__).resolve().parent.parent / "imserver"
    elsewhere = []
    for path in package.rglob("*.py"):
        where = path.relative_to(package)
        if path.name == "protocol.py" or where.parts[0] == "client" or where.as_posix() in (
                "http/adminview.py", "http/openapi.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "type" for k in node.keys):
                elsewhere.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not elsewhere, f"server frames built outside core/protocol.py: {elsewhere}"

"""Property-based: random and mutated frames to the parser and to a live connection."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imserver.core import protocol as p
from imserver.core.errors import ProtocolError
from imserver.testing import ServerProcess, SyncClient, login

TYPES = ["join", "leave", "say", "dm", "history", "dm_sync", "ping", "", "JOIN"]
# The edges of SQLite's signed 64-bit integers, and far beyond (json decodes any size).
EDGE_INTEGERS = st.sampled_from([2**63 - 1, 2**63, -2**63, -2**63 - 1, 10**30, -1, 0])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | EDGE_INTEGERS | st.floats()
    | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
frame_dicts = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=10)},
    optional={
        "room": st.sampled_from(["general", "fuzz", "", "a" * 65, "bad room", "x/y"]) | json_values,
        "text": st.text(max_size=300) | json_values,
        "cid": st.text(max_size=140) | json_values,
        "to": st.sampled_from(["fuzzer", "nobody", ""]) | json_values,
        "with": st.sampled_from(["fuzzer", ""]) | json_values,
        "since": st.integers(-5, 2**63) | EDGE_INTEGERS | json_values,
        "before": st.integers(-5, 2**63) | EDGE_INTEGERS | json_values,
        "limit": st.integers(-5, 10_000) | EDGE_INTEGERS | json_values,
    })


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A serialized frame, then bytes flipped, cut, or inserted."""
    data = bytearray(json.dumps(draw(frame_dicts), allow_nan=True).encode())
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


frames = frame_dicts.map(lambda d: json.dumps(d).encode()) | mutated() | st.binary(max_size=200)
# Invalid UTF-8 in a text frame fails the connection (1007, tests/test_conformance.py):
# a live connection gets the same frames made valid, bad bytes replaced.
text_frames = frames.map(lambda raw: raw.decode("utf-8", "replace").encode("utf-8"))


def local_parse(raw: bytes) -> str | None:
    """The error code our own parser gives a frame, None if it is a valid command."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bad_request"
    if text == p.PING:
        return None
    try:
        p.parse_frame(text, max_text_chars=4000)
    except ProtocolError as exc:
        return exc.code
    return None


@given(frames)
@settings(max_examples=600, deadline=None)
def test_parser_raises_only_protocol_errors(raw):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    try:
        command = p.parse_frame(text, max_text_chars=4000)
    except ProtocolError as exc:
        assert exc.code in {"bad_request", "too_long"} and exc.message
    else:
        assert isinstance(command, p.Join | p.Leave | p.Say | p.DirectMessage | p.History | p.DmSync)
        if isinstance(command, p.Say | p.DirectMessage):
            p.encode({"text": command.text}).encode("utf-8")  # always safe to send on


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"), {"limits": {
        "messages_per_second": 1e6, "burst": 1_000_000, "max_rooms_per_connection": 100_000}})
    server.start()
    client = SyncClient(server.host, f"/ws?token={login(server.host, 'fuzzer')}")
    assert json.loads(client.recv() or "{}")["type"] == "welcome"
    yield server, client
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def bystander(live):
    """A normal client of the same server, in a room of its own."""
    server, _ = live
    client = SyncClient(server.host, f"/ws?token={login(server.host, 'bystander')}")
    assert json.loads(client.recv() or "{}")["type"] == "welcome"
    client.send_json({"type": "join", "room": "calm"})
    assert json.loads(client.recv() or "{}")["type"] == "joined"
    client.said = []  # type: ignore[attr-defined]
    yield client
    client.close()


def answer_to(client: SyncClient, cid: str) -> dict:
    while True:
        frame = json.loads(client.recv() or "null")
        if frame.get("cid") == cid:
            return frame


every_command = st.sampled_from(TYPES[:6]).flatmap(lambda kind: st.fixed_dictionaries(
    {"type": st.just(kind)},
    optional={key: json_values for key in ("room", "text", "cid", "to", "with", "since", "before", "limit")}))


@given(every_command)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_field_value_stops_the_server_for_a_normal_client(live, bystander, frame):
    server, attacker = live
    attacker.send_text(json.dumps(frame))
    attacker.send_text("ping")
    while attacker.recv() != "pong":
        pass
    cid = f"b{len(bystander.said)}"
    bystander.send_json({"type": "say", "room": "calm", "text": cid, "cid": cid})
    assert answer_to(bystander, cid)["type"] == "ack", frame
    bystander.said.append(cid)
    bystander.send_json({"type": "history", "room": "calm", "limit": 1})
    while (page := json.loads(bystander.recv() or "null"))["type"] != "history":
        pass
    assert [m["text"] for m in page["messages"]] == [cid], frame
    assert "Traceback" not in server.output()


@given(text_frames)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_live_connection_answers_every_bad_frame_and_stays_usable(live, raw):
    server, client = live
    client.send_text(raw)
    client.send_text("ping")
    answers = []
    pongs = 2 if raw == b"ping" else 1
    while pongs:
        text = client.recv()
        assert text is not None, f"closed with {client.close_code} after {raw!r}"
        if text == "pong":
            pongs -= 1
        else:
            answers.append(json.loads(text))
    expected = local_parse(raw)
    # Parse errors are answered at once; errors from the store (unknown_user) may come
    # after this example's pong, so only the former are compared.
    errors = [a["code"] for a in answers if a["type"] == "error" and a["code"] in ("bad_request", "too_long")]
    assert errors == ([expected] if expected else []), (raw, answers)
    assert server.proc is not None and server.proc.poll() is None
    assert "Traceback" not in server.output()

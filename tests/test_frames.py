"""WebSocket framing without sockets: the inbound FrameParser and the outbound frames."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imserver.frames import FrameError, FrameParser, MessageTooBig, ping_frame, text_frame

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes, *, final: bool = True, masked: bool = True,
                 rsv: int = 0) -> bytes:
    """A frame as a client sends it (RFC 6455 5.2): masked, with the shortest length form."""
    first = (0x80 if final else 0) | rsv | opcode
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def messages(parser: FrameParser, *chunks: bytes) -> list[tuple[int, bytes]]:
    """Every message the chunks complete; raises the parser's error, if any."""
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
        if parser.error is not None:
            raise parser.error
    return out


def test_unmasks_text_binary_and_control_frames():
    stream = (client_frame(TEXT, b"ping") + client_frame(BINARY, b"\x00\xff")
              + client_frame(PONG, b"\x00\x00\x00\x07") + client_frame(CLOSE, struct.pack("!H", 1000)))
    assert messages(FrameParser(1024), stream) == [
        (TEXT, b"ping"), (BINARY, b"\x00\xff"), (PONG, b"\x00\x00\x00\x07"), (CLOSE, b"\x03\xe8")]


def test_unmasked_frames_and_empty_payloads_are_read_too():
    assert messages(FrameParser(1024), client_frame(TEXT, b"hi", masked=False) + client_frame(PING, b"")) == [
        (TEXT, b"hi"), (PING, b"")]


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 200_000])
def test_every_length_form(size):
    payload = os.urandom(size)
    assert messages(FrameParser(size), client_frame(BINARY, payload)) == [(BINARY, payload)]


def test_a_frame_split_anywhere_waits_for_the_rest():
    payload = "héllo wörld".encode() * 20
    frame = client_frame(TEXT, payload)
    for cut in range(len(frame)):
        parser = FrameParser(1024)
        assert messages(parser, frame[:cut]) == []
        assert messages(parser, frame[cut:]) == [(TEXT, payload)]


def test_fragments_are_joined_and_control_frames_pass_between_them():
    stream = (client_frame(TEXT, b"one ", final=False) + client_frame(PING, b"p")
              + client_frame(CONTINUATION, b"two ", final=False) + client_frame(CONTINUATION, b"three"))
    assert messages(FrameParser(1024), stream) == [(PING, b"p"), (TEXT, b"one two three")]


def test_message_too_big_is_refused_from_its_header_before_the_payload_arrives():
    parser = FrameParser(1000)
    header_only = client_frame(BINARY, b"x" * 1001)[:4]
    with pytest.raises(MessageTooBig):
        messages(parser, header_only)
    assert messages(FrameParser(1000), client_frame(BINARY, b"x" * 1000)) == [(BINARY, b"x" * 1000)]


def test_message_too_big_counts_its_fragments_together():
    parser = FrameParser(10)
    with pytest.raises(MessageTooBig):
        messages(parser, client_frame(TEXT, b"123456", final=False) + client_frame(CONTINUATION, b"12345"))


@pytest.mark.parametrize(("stream", "why"), [
    (client_frame(TEXT, b"x", rsv=0x40), "reserved bits"),
    (client_frame(0x3, b"x"), "unknown opcode"),
    (client_frame(0xB, b"x"), "unknown opcode"),
    (client_frame(PING, b"x", final=False), "fragmented control frame"),
    (client_frame(CONTINUATION, b"x"), "nothing to continue"),
    (client_frame(TEXT, b"a", final=False) + client_frame(TEXT, b"b"), "before the last one ended"),
    (struct.pack("!BB", 0x80 | PING, 0x80 | 126) + b"\x00\x7e", "longer than 125"),
])
def test_framing_violations_are_refused(stream, why):
    with pytest.raises(FrameError, match=why):
        messages(FrameParser(1 << 20), stream)


def test_messages_before_a_violation_still_come_out_and_nothing_after():
    parser = FrameParser(1024)
    stream = client_frame(TEXT, b"fine") + client_frame(0x3, b"bad") + client_frame(TEXT, b"x")
    assert parser.feed(stream) == [(TEXT, b"fine")]
    assert isinstance(parser.error, FrameError) and "opcode" in str(parser.error)
    assert parser.feed(client_frame(TEXT, b"later")) == []


@given(st.lists(st.tuples(st.sampled_from([TEXT, BINARY, PING, PONG]), st.binary(max_size=300)), max_size=12),
       st.lists(st.integers(1, 400), max_size=30))
def test_any_chunking_of_a_stream_gives_the_same_messages(sent, cuts):
    sent = [(op, payload[:125] if op & 0x8 else payload) for op, payload in sent]
    stream = b"".join(client_frame(op, payload) for op, payload in sent)
    chunks, at = [], 0
    for size in cuts:
        chunks.append(stream[at:at + size])
        at += size
    chunks.append(stream[at:])
    assert messages(FrameParser(1024), *chunks) == sent


def test_outbound_frames_parse_back():
    """What the server sends is what a parser on the other side reads."""
    payload = os.urandom(70_000)
    stream = text_frame(b"hello") + text_frame(payload) + ping_frame(b"\x00\x00\x00\x01")
    assert messages(FrameParser(1 << 20), stream) == [
        (TEXT, b"hello"), (TEXT, payload), (PING, b"\x00\x00\x00\x01")]

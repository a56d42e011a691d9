"""WebSocket framing without sockets: the inbound FrameParser and the outbound frames."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imserver.core.frames import binary_frame, ping_frame, pong_frame, text_frame
from imserver.transport.parser import FrameError, FrameParser, InvalidUTF8, MessageTooBig

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


def test_a_control_frame_may_carry_exactly_125_bytes():
    payload = os.urandom(125)
    assert messages(FrameParser(1024), client_frame(PING, payload)) == [(PING, payload)]


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


def chopped(stream: bytes, cuts: list[int]) -> list[bytes]:
    chunks, at = [], 0
    for size in cuts:
        chunks.append(stream[at:at + size])
        at += size
    chunks.append(stream[at:])
    return chunks


@given(st.lists(st.tuples(st.sampled_from([TEXT, BINARY, PING, PONG]), st.binary(max_size=300)), max_size=12),
       st.lists(st.integers(1, 400), max_size=30))
def test_any_chunking_of_a_stream_gives_the_same_messages(sent, cuts):
    sent = [(op, payload[:125] if op & 0x8 else payload.decode("utf-8", "replace").encode()
             if op == TEXT else payload) for op, payload in sent]
    stream = b"".join(client_frame(op, payload) for op, payload in sent)
    assert messages(FrameParser(1024), *chopped(stream, cuts)) == sent


def test_invalid_utf8_in_a_fragment_fails_at_that_fragment():
    parser = FrameParser(1024)
    assert parser.feed(client_frame(TEXT, "κόσμε".encode(), final=False)) == []
    assert parser.error is None
    parser.feed(client_frame(CONTINUATION, b"\xf4\x90\x80\x80", final=False))  # beyond U+10FFFF
    assert isinstance(parser.error, InvalidUTF8) and parser.error.close_code == 1007


def test_a_character_cut_between_fragments_is_fine_and_an_unfinished_one_at_the_end_is_not():
    euro = "€".encode()
    assert messages(FrameParser(1024), client_frame(TEXT, euro[:1], final=False),
                    client_frame(CONTINUATION, euro[1:], final=False), client_frame(CONTINUATION, b"!")) == [
        (TEXT, "€!".encode())]
    with pytest.raises(InvalidUTF8):
        messages(FrameParser(1024), client_frame(TEXT, b"ok", final=False),
                 client_frame(CONTINUATION, euro[:2]))


def test_invalid_utf8_in_a_text_frame_that_spans_reads_fails_before_its_end():
    parser = FrameParser(1 << 20)
    frame = client_frame(TEXT, b"fine so far " * 10 + b"\xc0\xaf" + b"x" * 5000)
    assert parser.feed(frame[:100]) == [] and parser.error is None
    parser.feed(frame[100:200])
    assert isinstance(parser.error, InvalidUTF8)


def test_a_whole_text_frame_is_left_to_its_reader_and_binary_is_never_checked():
    assert messages(FrameParser(1024), client_frame(TEXT, b"\xff")) == [(TEXT, b"\xff")]
    frame = client_frame(BINARY, b"\xff" * 300)
    assert messages(FrameParser(1024), frame[:100], frame[100:]) == [(BINARY, b"\xff" * 300)]


@given(st.text(max_size=60), st.binary(max_size=4), st.text(max_size=60),
       st.lists(st.integers(1, 40), max_size=6), st.lists(st.integers(1, 30), max_size=12))
def test_utf8_is_checked_however_a_text_message_is_fragmented_and_read(head, middle, tail, sizes, cuts):
    """A valid text message comes out whole, whatever the cuts; an invalid one in
    fragments is refused as InvalidUTF8, and in one frame it is refused or, if it came
    whole in one read, left to its reader."""
    payload = head.encode() + middle + tail.encode()
    try:
        payload.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    pieces, at = [], 0
    for size in sizes:
        pieces.append(payload[at:at + size])
        at += size
    pieces.append(payload[at:])
    stream = b"".join(client_frame(TEXT if i == 0 else CONTINUATION, piece, final=i == len(pieces) - 1)
                      for i, piece in enumerate(pieces))
    chunks = chopped(stream, cuts)
    parser = FrameParser(1 << 16)
    try:
        out = messages(parser, *chunks)
    except InvalidUTF8:
        assert not valid
    else:
        assert valid or len(pieces) == 1, (pieces, chunks)
        assert out == [(TEXT, payload)]


def test_framing_errors_carry_their_close_code():
    assert FrameError("x").close_code == 1002
    assert MessageTooBig("x").close_code == 1009
    assert InvalidUTF8("x").close_code == 1007


def test_outbound_frames_parse_back():
    """What the server sends is what a parser on the other side reads."""
    payload = os.urandom(70_000)
    stream = (text_frame(b"hello") + text_frame(payload) + ping_frame(b"\x00\x00\x00\x01")
              + binary_frame(payload[:300]) + pong_frame(b"p"))
    assert messages(FrameParser(1 << 20), stream) == [
        (TEXT, b"hello"), (TEXT, payload), (PING, b"\x00\x00\x00\x01"), (BINARY, payload[:300]),
        (PONG, b"p")]

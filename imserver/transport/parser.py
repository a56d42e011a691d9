"""The inbound half of WebSocket framing (RFC 6455): the bytes a client sends, split
into messages. No I/O: bytes in, messages out (the outbound half is core/frames.py)."""

from __future__ import annotations

import codecs

from .tornado_compat import websocket_mask


class FrameError(Exception):
    """The peer broke the rules of RFC 6455: the connection fails, with a close frame
    of `close_code` sent before the TCP connection is dropped."""

    close_code = 1002  # protocol error


class MessageTooBig(FrameError):
    """A message longer than the limit: the connection is closed with 1009."""

    close_code = 1009


class InvalidUTF8(FrameError):
    """A text message that is not UTF-8 (RFC 6455 8.1): closed with 1007."""

    close_code = 1007


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


# Opcodes a peer may send (RFC 6455 5.2): continuation, text, binary, close, ping, pong.
_KNOWN_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))


class FrameParser:
    """Turns the bytes a client sends into whole messages (RFC 6455 5.2).

    `feed()` takes whatever one read returned and gives back the messages it
    completed, as `(opcode, payload)` pairs: unmasked, with fragments joined,
    control frames in the order they came, even between the fragments of a
    message. A frame that breaks the rules stops the parsing: the messages
    before it are still returned, and `error` says what was wrong. A message
    longer than `max_message_size` is refused (MessageTooBig) as soon as its
    length is read, so it is never buffered. A text message that does not come
    whole in one read (in fragments, or a frame that spans reads) is checked as
    UTF-8 as its bytes come, so that a bad one fails at once (InvalidUTF8); a
    text frame that comes whole in one read is left to its reader to decode.
    """

    __slots__ = ("_buffer", "_decoder", "_fragment_opcode", "_fragments", "_partial", "error",
                 "max_message_size")

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.error: FrameError | None = None
        self._buffer = b""
        self._fragments: bytearray | None = None
        self._fragment_opcode = 0
        # The UTF-8 check of the text message in fragments, and of the text frame that
        # is partly in _buffer: its decoder, and how much of its payload that has taken.
        self._decoder: codecs.IncrementalDecoder | None = None
        self._partial: tuple[codecs.IncrementalDecoder, int] | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        messages: list[tuple[int, bytes]] = []
        if self.error is not None:
            return messages
        if self._buffer:
            buf = self._buffer + data
            resumed, self._partial = self._partial, None  # for the frame at the start of buf
        else:
            buf, resumed = data, None
        pos, end_of_data = 0, len(buf)
        try:
            # One pass over the frames that are complete; the common case, one small
            # frame per read, costs this loop once and no further calls.
            while end_of_data - pos >= 2:
                first, second = buf[pos], buf[pos + 1]
                opcode = first & 0x0F
                if first & 0x70:
                    raise FrameError("reserved bits set without an extension")
                if opcode not in _KNOWN_OPCODES:
                    raise FrameError(f"unknown opcode {opcode:#x}")
                length, header = second & 0x7F, 2
                if opcode & 0x8:
                    if length > 125:
                        raise FrameError("control frame longer than 125 bytes")
                elif length == 126:
                    if end_of_data - pos < 4:
                        break
                    length, header = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
                elif length == 127:
                    if end_of_data - pos < 10:
                        break
                    length, header = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
                if not opcode & 0x8:
                    so_far = len(self._fragments) if self._fragments is not None and opcode == 0 else 0
                    if length + so_far > self.max_message_size:
                        raise MessageTooBig(f"message of more than {self.max_message_size} bytes")
                start = pos + header + (4 if second & 0x80 else 0)
                end = start + length
                if end > end_of_data:
                    if (opcode == 0x1 or self._decoder is not None) and start < end_of_data:
                        self._partial = self._check_part(
                            opcode, resumed if pos == 0 else None, buf, start, end_of_data,
                            buf[start - 4:start] if second & 0x80 else None)
                    break
                payload = buf[start:end]
                if second & 0x80:
                    payload = websocket_mask(buf[start - 4:start], payload)
                if first & 0x80 and (opcode & 0x8 or (opcode and self._fragments is None)):
                    messages.append((opcode, payload))  # whole by itself: most frames
                else:
                    self._fragment(first & 0x80, opcode, payload, messages, resumed if pos == 0 else None)
                pos = end
        except FrameError as exc:
            self.error = exc
            pos = end_of_data
        self._buffer = buf[pos:] if pos < end_of_data else b""
        return messages

    def _fragment(self, final: int, opcode: int, payload: bytes, messages: list[tuple[int, bytes]],
                  resumed: tuple[codecs.IncrementalDecoder, int] | None) -> None:
        """A frame that is not a whole message by itself: a fragment, or a frame that
        breaks the fragmentation rules (feed() has taken every other frame). `resumed`:
        the UTF-8 check of this frame's first bytes, if it spanned reads."""
        if opcode & 0x8:
            raise FrameError("fragmented control frame")
        fragments = self._fragments
        checked = resumed[1] if resumed is not None else 0
        if opcode == 0x0:
            if fragments is None:
                raise FrameError("continuation frame with nothing to continue")
            fragments += payload
            if self._decoder is not None:
                _check_utf8(self._decoder, payload[checked:], final)
            if final:
                self._fragments = self._decoder = None
                messages.append((self._fragment_opcode, bytes(fragments)))
        elif fragments is not None:
            raise FrameError("new message before the last one ended")
        else:
            self._fragment_opcode, self._fragments = opcode, bytearray(payload)
            if opcode == 0x1:
                self._decoder = resumed[0] if resumed is not None else _utf8_decoder()
                _check_utf8(self._decoder, payload[checked:], final)

    def _check_part(self, opcode: int, resumed: tuple[codecs.IncrementalDecoder, int] | None,
                    buf: bytes, start: int, end: int,
                    key: bytes | None) -> tuple[codecs.IncrementalDecoder, int] | None:
        """The first bytes of a text frame that is not all here yet (`buf[start:end]`,
        still masked with `key`): the UTF-8 check goes as far as they go, from where
        it was (`resumed`). Returns where it is now."""
        if opcode == 0x0:
            decoder = self._decoder  # a fragment of a text message: its check goes on
        elif self._fragments is not None:
            return None  # a new message inside another: an error once it is whole
        else:
            decoder = resumed[0] if resumed is not None else _utf8_decoder()
        if decoder is None:
            return None
        checked = resumed[1] if resumed is not None else 0
        new = buf[start + checked:end]
        if key is not None:
            turn = checked % 4
            new = websocket_mask(key[turn:] + key[:turn], new)
        _check_utf8(decoder, new, 0)
        return decoder, end - start


def _check_utf8(decoder: codecs.IncrementalDecoder, data: bytes, final: int) -> None:
    try:
        decoder.decode(data, bool(final))
    except UnicodeDecodeError:
        raise InvalidUTF8("text message is not valid UTF-8") from None

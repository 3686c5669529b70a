"""MLLP framing (HL7 v2 Appendix C): <VT> message <FS><CR>, without sockets.

`FrameDecoder` is fed whatever a read returned and yields each complete frame. It tolerates what
real senders put between frames (CR, LF, stray bytes), a frame split over many reads and many
frames in one read. A frame over the size limit is skipped up to its end block, so the stream
stays in step, and reported with its first bytes so that it can still be answered.
"""

from __future__ import annotations

from dataclasses import dataclass

START_BLOCK = b"\x0b"  # VT
END_BLOCK = b"\x1c"  # FS
CARRIAGE_RETURN = b"\x0d"
# Enough of an oversize frame to read its MSH and address the rejection.
OVERSIZE_HEAD_BYTES = 64 * 1024
LARGE_FRAME = 1024 * 1024
# Not counted as stray between frames, wherever it sits among other bytes.
_WHITESPACE = b" \t\r\n\x0b\x0c"


@dataclass(frozen=True)
class Frame:
    payload: bytes


@dataclass(frozen=True)
class OversizeFrame:
    """A frame larger than the limit: its first bytes and its full size."""

    head: bytes
    size: int


@dataclass(frozen=True)
class TruncatedFrame:
    """A frame the sender abandoned (a new start block before its end block), or one still
    open when the connection ended: its first bytes and how many bytes it had."""

    head: bytes
    size: int


def encode(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class FrameDecoder:
    """Incremental MLLP decoder for one connection."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._in_frame = False
        self._scanned = 0  # bytes of the current frame already searched for an end block
        self._discarding = False
        self._head = b""
        self._size = 0
        self.stray_bytes = 0  # bytes outside frames that were not CR/LF/whitespace
        self.abandoned_frames = 0  # frames cut short by a new start block

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has been read: closing now would cut it off."""
        return self._in_frame

    def pending(self) -> TruncatedFrame | None:
        """The frame in hand, if any: what is lost if the connection ends now."""
        if not self._in_frame:
            return None
        if self._discarding:
            return TruncatedFrame(self._head, self._size)
        return TruncatedFrame(bytes(self._buffer[:OVERSIZE_HEAD_BYTES]), len(self._buffer))

    def feed(self, data: bytes) -> list[Frame | OversizeFrame | TruncatedFrame]:
        buf = self._buffer
        buf += data
        events: list[Frame | OversizeFrame | TruncatedFrame] = []
        while buf:
            if not self._in_frame:
                start = buf.find(START_BLOCK)
                junk = buf if start == -1 else buf[:start]
                self.stray_bytes += len(bytes(junk).translate(None, _WHITESPACE))
                if start == -1:
                    buf.clear()
                    break
                del buf[: start + 1]
                self._in_frame, self._scanned = True, 0
                continue
            if self._discarding:
                end = buf.find(END_BLOCK)
                restart = buf.find(START_BLOCK, 0, len(buf) if end == -1 else end)
                if restart != -1:
                    # The sender gave up on the oversize frame and began another: answer the
                    # oversize one, then read the new frame normally.
                    self._size += restart
                    del buf[: restart + 1]
                    events.append(OversizeFrame(self._head, self._size))
                    self._reset()
                    self._in_frame = True
                    continue
                if end == -1:
                    self._size += len(buf)
                    buf.clear()
                    break
                self._size += end
                del buf[: end + 1]
                events.append(OversizeFrame(self._head, self._size))
                self._reset()
                continue
            end = buf.find(END_BLOCK, self._scanned)
            restart = buf.find(START_BLOCK, self._scanned, len(buf) if end == -1 else end)
            if restart != -1:
                # A new frame began before this one ended: the sender gave up on the old one,
                # which is reported (to be recorded) and the new one read.
                self.abandoned_frames += 1
                events.append(
                    TruncatedFrame(bytes(buf[: min(restart, OVERSIZE_HEAD_BYTES)]), restart)
                )
                del buf[: restart + 1]
                self._scanned = 0
                continue
            if end == -1:
                if len(buf) > self.max_size:
                    self._discarding = True
                    self._head = bytes(buf[:OVERSIZE_HEAD_BYTES])
                    self._size = len(buf)
                    buf.clear()
                else:
                    self._scanned = len(buf)
                break
            payload = bytes(buf[:end])
            del buf[: end + 1]
            if end > LARGE_FRAME:
                # A new, small buffer: the old one would keep the large frame's capacity for
                # as long as the connection lasts.
                self._buffer = buf = bytearray(buf)
            if len(payload) > self.max_size:
                events.append(OversizeFrame(payload[:OVERSIZE_HEAD_BYTES], len(payload)))
            else:
                events.append(Frame(payload))
            self._reset()
        return events

    def _reset(self) -> None:
        self._in_frame = False
        self._discarding = False
        self._scanned = 0
        self._head = b""
        self._size = 0

"""A mutation fuzzer for the inbound edge: real messages, broken in the ways senders break them.

Used by the bounded fuzz test (tests/hl7/test_fuzz.py) and by the full run (bench/fuzz.py).
Seeds are the public corpus (read where it lies, never copied into the project) and our own
samples; each input is a seed with a few mutations: bytes flipped, set, inserted or deleted,
tokens that once broke parsing (a bare MSH, +2500 offsets, 0x85, NUL, long values, charset
names, escapes), fields replaced, segments dropped or repeated, two seeds spliced. MLLP framing
bytes (VT, FS) are taken out of the payloads: framing has tests of its own, and a VT inside a
payload is a new frame (recorded as a truncated frame, not answered), which would make
"answered = sent" untrue by design.

The drivers send each input and wait for its answer, on persistent MLLP connections or on
keep-alive HTTP connections, and count what came back: answers, drops (a connection closed,
reset or silent for `timeout` seconds with a frame unanswered), HTTP 500s and other statuses,
and malformed ACKs (no MSH, no MSA or an MSA-1 outside table 0008).
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests import samples

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
ACK_CODES = frozenset({b"AA", b"AE", b"AR", b"CA", b"CE", b"CR"})
# error_text of the inbound edge's last line of defence: an input that broke something.
UNEXPECTED = "the message could not be processed"
MAX_INPUT = 64 * 1024

INTERESTING = (
    b"",
    b"MSH",
    b"MSH\r",
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"\r",
    b"\n",
    b"\r\n",
    b"\x85",
    b"\xff",
    b"\xe9",
    b"\x00",
    b"\xef\xbb\xbf",
    "…é".encode(),
    b"\\X00\\",
    b"\\X0D0A\\",
    b"\\.br\\",
    b"\\Cxxyy\\",
    b"\\",
    b"+2500",
    b"-2400",
    b"20261124092500+2500",
    b"99999999999999",
    b"00000000",
    b"20260230",
    b"A" * 300,
    b"9" * 40,
    b"MDM^T02^MDM_T02",
    b"MDM^T11",
    b"MDM^T99",
    b"ORU^R01",
    b"ADT^A01",
    b"ACK",
    b"2.3",
    b"2.5.1",
    b"3.0",
    b"UNICODE UTF-8",
    b"8859/1",
    b"ASCII",
    b"KLINGON",
    b"^AP^PDF^Base64^",
    b"^TEXT^PLAIN^A^hello",
    b"^AP^PDF^Hex^zz",
    b"====",
    b"NH",
    b"NHS",
    b"9990000018",
    b"9990000019",
    b"ZFL|1|W|NOPAT|serious-harm^x^FLAGREASON",
    b"ZFL|1|Q",
    b"OBX|1|ED|PDF||",
    b"OBX|1|TX|||",
    b"TXA|1|DS|TX",
    b"PID|1||9990000018^^^NHS^NH",
    b"PD1|||^^V81999",
    b"OBR|1||",
    b"AL",
    b"NE",
    b"ER",
    b"SU",
    b"P",
    b"T",
    b"RXX",
)


def seeds(corpus: Path | None = samples.CORPUS) -> list[bytes]:
    """Our samples, and each corpus message twice: as sent, and from our registered sender
    with an NHS number (so that it reaches the documents, not only the first checks)."""
    found = [
        samples.mdm(),
        samples.mdm("T11", lines=()),
        samples.mdm("T06", parent="DOC-0", charset="UNICODE UTF-8"),
        samples.oru(),
        samples.oru(observations=samples.obx_pdf()),
    ]
    if corpus is not None and corpus.is_dir():
        for path in sorted(corpus.glob("*.hl7")):
            data = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
            found.append(data)
            found.append(_as_our_sender(data))
    return [s.translate(None, VT + FS) for s in found if s]


def _as_our_sender(message: bytes) -> bytes:
    """The message from our registered sender, with an NHS number added to PID-3 (most of
    the corpus has none), so that it reaches the documents."""
    if len(message) < 8 or not message.startswith(b"MSH"):
        return message
    sep = message[3:4]
    segments = message.split(CR)
    fields = segments[0].split(sep)
    while len(fields) < 12:
        fields.append(b"")
    fields[3] = samples.SENDER.encode()
    fields[10] = b"P"
    segments[0] = sep.join(fields)
    for i, segment in enumerate(segments):
        if segment.startswith(b"PID" + sep):
            pid = segment.split(sep)
            while len(pid) < 4:
                pid.append(b"")
            pid[3] = samples.NHS_NUMBERS[2].encode() + b"^^^NHS^NH~" + pid[3]
            segments[i] = sep.join(pid)
    return CR.join(segments)


class Mutator:
    """Inputs from seeds, reproducible from `seed`."""

    def __init__(self, seed_messages: list[bytes], seed: int = 0) -> None:
        self.seeds = seed_messages
        self.rng = random.Random(seed)
        self.count = 0
        self._ops: list[Callable[[bytearray], None]] = [
            self._flip,
            self._set_byte,
            self._insert,
            self._insert,
            self._delete,
            self._duplicate,
            self._field,
            self._field,
            self._segment,
            self._splice,
            self._truncate,
        ]

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return self.next()

    def next(self) -> bytes:
        rng = self.rng
        self.count += 1
        data = bytearray(rng.choice(self.seeds))
        if rng.random() < 0.7:  # mostly new messages; the rest are resends or clashes
            data = bytearray(_with_control_id(bytes(data), b"F%d" % self.count))
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
            rng.choice(self._ops)(data)
        return bytes(data[:MAX_INPUT]).translate(None, VT + FS)

    # Mutations --------------------------------------------------------------------------

    def _pos(self, data: bytearray) -> int:
        return self.rng.randrange(len(data) + 1)

    def _flip(self, data: bytearray) -> None:
        if data:
            i = self.rng.randrange(len(data))
            data[i] ^= 1 << self.rng.randrange(8)

    def _set_byte(self, data: bytearray) -> None:
        if data:
            data[self.rng.randrange(len(data))] = self.rng.randrange(256)

    def _insert(self, data: bytearray) -> None:
        # Early positions more often: the header is where parsing decides the most.
        i = (
            self._pos(data)
            if self.rng.random() < 0.5
            else self.rng.randrange(min(len(data), 120) + 1)
        )
        data[i:i] = self.rng.choice(INTERESTING)

    def _delete(self, data: bytearray) -> None:
        i = self._pos(data)
        del data[i : i + self.rng.randrange(1, 64)]

    def _duplicate(self, data: bytearray) -> None:
        i = self._pos(data)
        chunk = data[i : i + self.rng.randrange(1, 256)]
        data[i:i] = chunk * self.rng.randrange(1, 4)

    def _field(self, data: bytearray) -> None:
        """Replace one field of one segment with an interesting value."""
        segments = bytes(data).split(CR)
        s = self.rng.randrange(len(segments))
        fields = segments[s].split(b"|")
        f = self.rng.randrange(len(fields))
        fields[f] = self.rng.choice(INTERESTING)
        segments[s] = b"|".join(fields)
        data[:] = CR.join(segments)

    def _segment(self, data: bytearray) -> None:
        segments = bytes(data).split(CR)
        i = self.rng.randrange(len(segments))
        if self.rng.random() < 0.5:
            del segments[i]
        else:
            segments.insert(i, segments[i])
        data[:] = CR.join(segments)

    def _splice(self, data: bytearray) -> None:
        other = self.rng.choice(self.seeds)
        data[self._pos(data) :] = other[self.rng.randrange(len(other) + 1) :]

    def _truncate(self, data: bytearray) -> None:
        del data[self._pos(data) :]


def _with_control_id(message: bytes, control_id: bytes) -> bytes:
    if not message.startswith(b"MSH") or len(message) < 8:
        return message
    sep = message[3:4]
    line, cr, rest = message.partition(CR)
    fields = line.split(sep)
    if len(fields) > 9:
        fields[9] = control_id
    return sep.join(fields) + cr + rest


def ack_problem(ack: bytes) -> str:
    """Why `ack` is not a well-formed acknowledgement ("" when it is one)."""
    return read_ack(ack)[0]


def read_ack(ack: bytes) -> tuple[str, str]:
    """(why `ack` is not a well-formed acknowledgement or "", its MSA-1 code)."""
    if not ack.startswith(b"MSH") or len(ack) < 8:
        return "no MSH segment", ""
    sep = ack[3:4]
    segments = re.split(rb"\r\n|\r|\n", ack)
    header = segments[0].split(sep)
    component = ack[4:5]  # the ACK keeps the message's encoding characters
    if len(header) < 9 or header[8].split(component, 1)[0] != b"ACK":
        return "MSH-9 is not ACK", ""
    msa = next((s for s in segments if s.startswith(b"MSA" + sep)), None)
    if msa is None:
        return "no MSA segment", ""
    code = msa.split(sep)[1]
    if code not in ACK_CODES:
        return "MSA-1 is not an acknowledgement code", ""
    return "", code.decode()


@dataclass
class Tally:
    """What a run sent and what came back; shared by the driver threads."""

    sent: int = 0
    answered: int = 0
    dropped: int = 0  # connections lost (or silent) with an input unanswered
    http_500: int = 0
    other_status: dict[int, int] = field(default_factory=dict)
    malformed: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    examples: list[bytes] = field(default_factory=list)  # a few inputs that went wrong
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def answer(self, ack: bytes) -> None:
        problem, code = read_ack(ack)
        with self._lock:
            self.answered += 1
            if problem:
                self.malformed += 1
                if len(self.examples) < 5:
                    self.examples.append(ack)
            else:
                self.codes[code] = self.codes.get(code, 0) + 1

    def keep(self, data: bytes) -> None:
        with self._lock:
            if len(self.examples) < 5:
                self.examples.append(data)

    @property
    def clean(self) -> bool:
        return (
            self.answered == self.sent
            and not self.dropped
            and not self.http_500
            and not self.malformed
        )


def _frames(sock: socket.socket, buffer: bytearray) -> bytes:
    """The next ACK frame's payload; raises ConnectionError when the server closed."""
    while True:
        start = buffer.find(VT)
        end = buffer.find(FS, start + 1) if start != -1 else -1
        if start != -1 and end != -1:
            payload = bytes(buffer[start + 1 : end])
            del buffer[: end + 1]
            return payload
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        buffer += data


def drive_mllp(
    address: tuple[str, int],
    inputs: Iterator[bytes],
    count: int,
    *,
    connections: int = 4,
    timeout: float = 60.0,
    tally: Tally | None = None,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Send `count` inputs over `connections` persistent connections, each waiting for its
    answer; a lost connection counts a drop and is opened again."""
    tally = tally or Tally()
    lock = threading.Lock()
    remaining = [count]

    def take() -> bytes | None:
        with lock:
            if remaining[0] <= 0:
                return None
            remaining[0] -= 1
            return next(inputs)

    def worker() -> None:
        sock: socket.socket | None = None
        buffer = bytearray()
        while (data := take()) is not None:
            try:
                if sock is None:
                    sock = socket.create_connection(address, timeout=timeout)
                    buffer.clear()
                sock.sendall(VT + data + FS + CR)
                with tally._lock:
                    tally.sent += 1
                tally.answer(_frames(sock, buffer))
            except OSError:
                with tally._lock:
                    tally.dropped += 1
                tally.keep(data)
                if sock is not None:
                    sock.close()
                sock = None
            if progress is not None:
                progress(tally)
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def drive_http(
    address: tuple[str, int],
    token: str,
    inputs: Iterator[bytes],
    count: int,
    *,
    connections: int = 2,
    timeout: float = 60.0,
    tally: Tally | None = None,
) -> Tally:
    """POST `count` inputs to /hl7/v2/messages over keep-alive connections."""
    tally = tally or Tally()
    lock = threading.Lock()
    remaining = [count]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"}

    def take() -> bytes | None:
        with lock:
            if remaining[0] <= 0:
                return None
            remaining[0] -= 1
            return next(inputs)

    def worker() -> None:
        conn = http.client.HTTPConnection(*address, timeout=timeout)
        while (data := take()) is not None:
            with tally._lock:
                tally.sent += 1
            try:
                conn.request("POST", "/hl7/v2/messages", body=data, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                with tally._lock:
                    tally.dropped += 1
                tally.keep(data)
                conn.close()
                conn = http.client.HTTPConnection(*address, timeout=timeout)
                continue
            if response.status == 200:
                tally.answer(body)
                continue
            with tally._lock:
                if response.status >= 500:
                    tally.http_500 += 1
                else:
                    tally.answered += 1  # a clear HTTP error (413, say) is an answer too
                tally.other_status[response.status] = tally.other_status.get(response.status, 0) + 1
            if response.status >= 500:
                tally.keep(data)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally

"""MLLP ingest benchmark: our service against a minimal reference pipeline, same client, same box.

Run `.venv/bin/python bench/ingest.py` (full, about 2-3 minutes) or with `--quick` (about 20 s).
Both servers run as separate processes listening on 127.0.0.1 with fresh SQLite databases
(WAL, synchronous=FULL, one commit per message); the same load generator drives both, so the
ratio ours/reference is what to compare across machines. See bench/README.md.

The reference server (`--reference-server DB`) is the floor any durable-before-ACK Python
pipeline pays: one thread per connection, buffered recv, VT..FS CR framing, split-based
extraction of a few MSH fields, one SQLite insert and commit per message under a lock, an ACK.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import samples  # noqa: E402  (the project root must be on sys.path first)

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
END = FS + CR
UID = "@UID@"  # placeholder in message templates: replaced by a unique id per message
TARGET_RATIO = 0.50  # ours / reference on 8 connections, MDM


# Messages ---------------------------------------------------------------------------------------


def _report_lines(count: int, width: int) -> tuple[str, ...]:
    rng = random.Random(7)
    words = (
        "patient", "admitted", "with", "chest", "pain", "troponin", "negative", "ecg", "sinus",
        "rhythm", "discharged", "home", "follow", "up", "in", "cardiology", "clinic", "six",
        "weeks", "continue", "aspirin", "statin", "review", "bloods", "gp",
    )  # fmt: skip
    lines = []
    for i in range(count):
        text = f"{i + 1:02d}."
        while len(text) < width:
            text += " " + rng.choice(words)
        lines.append(text[:width])
    return tuple(lines)


def _fake_pdf(size: int) -> bytes:
    """A PDF-looking blob of `size` bytes (random body: incompressible, like a real scan)."""
    head = samples.TINY_PDF[:-6]
    body = random.Random(11).randbytes(size - len(head) - 6)
    return head + body + b"%%EOF\n"


class Template:
    """A message with UID placeholders; `render(uid)` returns the bytes of one unique message."""

    def __init__(self, message: bytes) -> None:
        self.parts = message.split(UID.encode())
        assert len(self.parts) >= 3, "MSH-10 and the document number must both hold the UID"

    def render(self, uid: bytes) -> bytes:
        return uid.join(self.parts)


def mdm_templates() -> list[Template]:
    """~6.6 KB MDM^T02 with 40 OBX TX lines, one template per test NHS number."""
    lines = _report_lines(40, 130)
    return [
        Template(
            samples.mdm("T02", control_id=UID, number=f"DOC-{UID}", nhs_number=nhs, lines=lines)
        )
        for nhs in samples.NHS_NUMBERS
    ]


def oru_templates() -> list[Template]:
    """~200 KB ORU^R01 whose report is a base64 PDF in one OBX ED."""
    observations = samples.obx_pdf(_fake_pdf(148 * 1024))
    return [
        Template(
            samples.oru(
                control_id=UID, number=f"RPT-{UID}", nhs_number=nhs, observations=observations
            )
        )
        for nhs in samples.NHS_NUMBERS
    ]


# Reference server -------------------------------------------------------------------------------


REF_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    message_type TEXT NOT NULL,
    control_id TEXT NOT NULL,
    raw BLOB NOT NULL
)
"""


def _connect_reference_db(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def run_reference_server(db_path: str, host: str, port: int) -> int:
    setup = _connect_reference_db(db_path)
    setup.execute(REF_SCHEMA)
    setup.close()
    write_lock = threading.Lock()

    def ack(payload: bytes) -> bytes:
        msh = payload.split(CR, 1)[0].split(b"|")
        msh += [b""] * (12 - len(msh))
        control_id = msh[9]
        now = time.strftime("%Y%m%d%H%M%S").encode()
        event = msh[8].split(b"^")[1] if b"^" in msh[8] else b""
        return (
            b"MSH|^~\\&|"
            + msh[4]
            + b"|"
            + msh[5]
            + b"|"
            + msh[2]
            + b"|"
            + msh[3]
            + b"|"
            + now
            + b"||ACK^"
            + event
            + b"^ACK|A"
            + control_id
            + b"|P|"
            + msh[11]
            + b"\rMSA|AA|"
            + control_id
            + b"\r"
        )

    def store(db: sqlite3.Connection, payload: bytes) -> None:
        msh = payload.split(CR, 1)[0].split(b"|")
        received = time.strftime("%Y-%m-%dT%H:%M:%S")
        row = (
            received,
            msh[3].decode("latin-1"),
            msh[8].decode("latin-1"),
            msh[9].decode("latin-1"),
            payload,
        )
        with write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO messages (received_at, sending_facility, message_type, "
                    "control_id, raw) VALUES (?, ?, ?, ?, ?)",
                    row,
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def serve(conn: socket.socket) -> None:
        db = _connect_reference_db(db_path)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        scanned = 0
        try:
            while True:
                data = conn.recv(256 * 1024)
                if not data:
                    return
                buf += data
                while True:
                    start = buf.find(VT)
                    if start == -1:
                        buf.clear()
                        scanned = 0
                        break
                    end = buf.find(END, max(start + 1, scanned))
                    if end == -1:
                        scanned = max(len(buf) - 1, 0)
                        break
                    payload = bytes(buf[start + 1 : end])
                    del buf[: end + 2]
                    scanned = 0
                    store(db, payload)
                    conn.sendall(VT + ack(payload) + END)
        except OSError:
            return
        finally:
            conn.close()
            db.close()

    server = socket.create_server((host, port), backlog=128)
    bound_host, bound_port = server.getsockname()[:2]
    print(f"reference: MLLP on {bound_host}:{bound_port}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# Server processes -------------------------------------------------------------------------------


class Server:
    """A server subprocess whose stderr names its address; stopped with terminate, then kill.

    `ready` is the banner that says the server accepts connections; `addresses` are patterns
    (host, port groups) tried in order on everything written to stderr so far. Our service
    prints its banner with print() while the accept thread logs "MLLP listener on H:P" at
    the same moment, and the two writes can interleave ("...on 127.0.0.1:35665" + log line +
    "\n"): the log line, written in one piece, is then the reliable source of the port.
    """

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], ready: str, addresses: list[str]
    ) -> None:
        self.name = name
        self.lines: list[str] = []
        self.host, self.port = "", 0
        self._ready = ready
        self._addresses = [re.compile(a) for a in addresses]
        self._started = threading.Event()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._started.wait(30) or not self.port:
            self.stop()
            raise RuntimeError(f"{name} did not start:\n" + "".join(self.lines[-20:]))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if self.port:
                continue
            text = "".join(self.lines)
            if self._ready not in text:
                continue
            for pattern in self._addresses:
                match = pattern.search(text)
                if match and 0 < int(match.group(2)) < 65536:
                    self.host, self.port = match.group(1), int(match.group(2))
                    self._started.set()
                    break
        self._started.set()  # the process ended

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server process and its children (our writer
        process); Linux /proc, 0 elsewhere."""
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat.parent.name == str(self.proc.pid) or fields[1] == str(self.proc.pid):
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _service_env(instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGGING_")}
    env.update(
        FLAGGING_INSTANCE_PATH=str(instance),
        FLAGGING_ENV="test",
        FLAGGING_SECRET_KEY="x",  # noqa: S106 (a throw-away test instance)
        FLAGGING_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_ours(workdir: Path) -> tuple[Server, Path]:
    instance = workdir / "ours"
    env = _service_env(instance)
    flagging = str(ROOT / ".venv" / "bin" / "flagging")
    for args in (
        ["db", "upgrade"],
        ["senders", "add", samples.SENDER, "--name", "Bench"],
        ["practices", "add", samples.PRACTICE, "--name", "Bench"],
    ):
        done = subprocess.run([flagging, *args], env=env, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"flagging {' '.join(args)} failed:\n{done.stderr}")
    server = Server(
        "ours",
        [flagging, "mllp", "--port", "0"],
        env,
        "flagging: MLLP on ",
        [r"MLLP listener on ([^\s:]+):(\d+)\n", r"flagging: MLLP on ([^\s:]+):(\d+)\n"],
    )
    return server, instance / "flagging.sqlite3"


def start_reference(workdir: Path) -> tuple[Server, Path]:
    db = workdir / "reference.sqlite3"
    argv = [sys.executable, str(Path(__file__).resolve()), "--reference-server", str(db)]
    server = Server(
        "reference",
        argv,
        dict(os.environ),
        "reference: MLLP on ",
        [r"reference: MLLP on ([^\s:]+):(\d+)\n"],
    )
    return server, db


# Load generator ---------------------------------------------------------------------------------


@dataclass
class Result:
    messages: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    warmup_bad: collections.Counter[str] = field(default_factory=collections.Counter)
    first_problem: str = ""
    cpu: float = 0.0  # server CPU seconds during the measured phase

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1e3


def _ack_fields(ack: bytes) -> tuple[str, str]:
    for seg in ack.split(CR):
        if seg.startswith(b"MSA"):
            parts = seg.split(b"|")
            code = parts[1].decode("latin-1") if len(parts) > 1 else "??"
            ref = parts[2].decode("latin-1") if len(parts) > 2 else ""
            return code, ref
    return "??", ""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def exchange(self, message: bytes) -> bytes:
        self.sock.sendall(VT + message + END)
        buf = self.buf
        while True:
            end = buf.find(END)
            if end != -1:
                start = buf.find(VT)
                ack = bytes(buf[start + 1 : end])
                del buf[: end + 2]
                return ack
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection before the ACK")
            buf += data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def run_load(
    server: Server,
    templates: list[Template],
    *,
    tag: str,
    connections: int,
    warmup: int,
    max_messages: int,
    max_seconds: float,
) -> tuple[Result, int]:
    """Drive `server`; return the measured result and the number of AAs (warm-up included)."""
    result = Result()
    lock = threading.Lock()
    per_conn = [
        max_messages // connections + (i < max_messages % connections) for i in range(connections)
    ]
    timing = {"start": 0.0, "deadline": 0.0}

    def start_clock() -> None:  # runs once, when every worker has warmed up
        # Write back the dirty pages of earlier runs (the other server's, too) so that this
        # run's fsyncs do not pay for them.
        if hasattr(os, "sync"):
            os.sync()
        timing["start"] = time.perf_counter()
        timing["deadline"] = timing["start"] + max_seconds

    barrier = threading.Barrier(connections + 1, action=start_clock)
    ends: list[float] = []
    accepted = [0]

    def worker(index: int) -> None:
        conn: Connection | None = None
        latencies: list[float] = []
        codes: collections.Counter[str] = collections.Counter()
        problem = ""
        sent = 0
        aa = 0

        def one(seq: int) -> None:
            nonlocal problem, aa
            uid = f"{tag}{index:02d}{seq:07d}"
            message = templates[seq % len(templates)].render(uid.encode())
            assert conn is not None
            t0 = time.perf_counter()
            ack = conn.exchange(message)
            latencies.append(time.perf_counter() - t0)
            code, ref = _ack_fields(ack)
            if ref != uid:
                code = f"{code}(MSA-2 {ref!r} != {uid})"
            codes[code] += 1
            if code == "AA":
                aa += 1
            elif not problem:
                problem = ack.decode("latin-1").replace("\r", "\n")

        try:
            conn = Connection(server.host, server.port)
            for seq in range(warmup):
                one(seq)
        except BaseException as exc:  # still meet the barrier, then report
            problem = f"warm-up failed: {type(exc).__name__}: {exc}"
            codes[f"(warm-up failed: {type(exc).__name__})"] += 1
        # Warm-up answers are not measured, but a non-AA among them is still reported.
        warmup_bad = collections.Counter({c: n for c, n in codes.items() if c != "AA"})
        latencies.clear()
        codes.clear()
        barrier.wait()
        try:
            if conn is not None and not problem.startswith("warm-up failed"):
                deadline = timing["deadline"]
                seq = warmup
                while sent < per_conn[index] and time.perf_counter() < deadline:
                    one(seq)
                    seq += 1
                    sent += 1
        except BaseException as exc:
            problem = problem or f"{type(exc).__name__}: {exc}"
            codes[f"({type(exc).__name__})"] += 1
        finally:
            end = time.perf_counter()
            if conn is not None:
                conn.close()
            with lock:
                ends.append(end)
                result.latencies.extend(latencies)
                result.codes.update(codes)
                result.warmup_bad.update(warmup_bad)
                result.messages += sent
                accepted[0] += aa
                if problem and not result.first_problem:
                    result.first_problem = problem

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    # The workers wait at the barrier once warmed up; the clock starts when all are ready.
    # (Server CPU is sampled just before: it includes the tail of the warm-up, a few messages.)
    while barrier.n_waiting < connections and any(t.is_alive() for t in threads):
        time.sleep(0.005)
    cpu0 = server.cpu_seconds()
    barrier.wait()
    for t in threads:
        t.join(max_seconds + 120)
    result.cpu = server.cpu_seconds() - cpu0
    result.seconds = (max(ends) if ends else time.perf_counter()) - timing["start"]
    return result, accepted[0]


# Scenarios and report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    kind: str  # mdm | oru
    connections: int
    max_messages: int
    max_seconds: float
    warmup: int


def scenarios(quick: bool) -> list[Scenario]:
    # (max messages, max seconds) per run; the wall-time bound is what usually ends a run.
    if quick:
        return [
            Scenario("a", "MDM 6.6 KB", "mdm", 1, 2_000, 3.0, 20),
            Scenario("b", "MDM 6.6 KB", "mdm", 8, 4_000, 3.0, 10),
            Scenario("c1", "ORU 200 KB", "oru", 1, 300, 3.0, 5),
            Scenario("c8", "ORU 200 KB", "oru", 8, 600, 3.0, 2),
        ]
    return [
        Scenario("a", "MDM 6.6 KB", "mdm", 1, 20_000, 15.0, 100),
        Scenario("b", "MDM 6.6 KB", "mdm", 8, 30_000, 20.0, 30),
        Scenario("c1", "ORU 200 KB", "oru", 1, 2_000, 12.0, 20),
        Scenario("c8", "ORU 200 KB", "oru", 8, 2_000, 12.0, 5),
    ]


def _count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def report_checks(
    rows: list[tuple[Scenario, Result, Result]],
    accepted: dict[str, int],
    ours_db: Path | None,
    ref_db: Path | None,
) -> int:
    """Print the non-AA answers and compare what each database holds with the AAs received."""
    status = 0
    for index, name in enumerate(("ours", "reference"), start=1):
        bad: collections.Counter[str] = collections.Counter()
        for _, ours, ref in rows:
            res = ours if index == 1 else ref
            bad.update({c: n for c, n in res.codes.items() if c != "AA"})
            bad.update({f"{c} (warm-up)": n for c, n in res.warmup_bad.items()})
        if bad:
            status = 1
            print(f"NON-AA answers from {name} (a bug): {dict(bad)}")
        else:
            print(f"{name}: every ACK was AA")
    if ours_db is not None and ours_db.exists():
        docs = _count(ours_db, "SELECT count(*) FROM documents")
        versions = _count(ours_db, "SELECT count(*) FROM document_versions")
        received = _count(ours_db, "SELECT count(*) FROM inbound_messages")
        ok = docs == accepted["ours"]
        status = max(status, 0 if ok else 1)
        print(
            f"ours: {accepted['ours']} AA (warm-up included); database holds {received} messages, "
            f"{docs} documents, {versions} versions: {'OK' if ok else 'MISMATCH (a bug)'}"
        )
    if ref_db is not None and ref_db.exists():
        stored = _count(ref_db, "SELECT count(*) FROM messages")
        ok = stored == accepted["reference"]
        status = max(status, 0 if ok else 1)
        print(
            f"reference: {accepted['reference']} AA; database holds {stored} messages: "
            f"{'OK' if ok else 'MISMATCH'}"
        )
    return status


def print_table(rows: list[tuple[Scenario, Result, Result]], sizes: dict[str, int]) -> None:
    head = (
        f"{'scenario':<22} {'ours msg/s':>10} {'ref msg/s':>10} {'ours/ref':>8}  "
        f"{'ours p50':>8} {'ours p99':>8} {'ref p50':>8} {'ref p99':>8}  "
        f"{'ours cpu':>8} {'ref cpu':>8}  {'n ours':>6} {'n ref':>6}"
    )
    print()
    print("ACK latency in ms; cpu = server process CPU ms per message; n = measured messages")
    print(head)
    print("-" * len(head))
    for sc, ours, ref in rows:
        name = f"({sc.key}) {sc.label} x{sc.connections}"
        ratio = ours.rate / ref.rate if ref.rate else float("nan")
        cpu_o = ours.cpu / ours.messages * 1e3 if ours.messages else float("nan")
        cpu_r = ref.cpu / ref.messages * 1e3 if ref.messages else float("nan")
        print(
            f"{name:<22} {ours.rate:>10.1f} {ref.rate:>10.1f} {ratio:>7.0%}  "
            f"{ours.percentile(50):>8.2f} {ours.percentile(99):>8.2f} "
            f"{ref.percentile(50):>8.2f} {ref.percentile(99):>8.2f}  "
            f"{cpu_o:>8.2f} {cpu_r:>8.2f}  {ours.messages:>6} {ref.messages:>6}"
        )
    print("message sizes: " + ", ".join(f"{k} {v:,} bytes" for k, v in sizes.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 20 s)")
    parser.add_argument(
        "--only",
        choices=["a", "b", "c1", "c8"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--seconds", type=float, help="override each run's wall-time bound")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the 8-connection MDM target is not met"
    )
    parser.add_argument("--reference-server", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_server:
        return run_reference_server(args.reference_server, args.host, args.port)

    templates = {"mdm": mdm_templates(), "oru": oru_templates()}
    sizes = {
        "MDM": len(templates["mdm"][0].render(b"X" * 12)),
        "ORU": len(templates["oru"][0].render(b"X" * 12)),
    }
    plan = [s for s in scenarios(args.quick) if not args.only or s.key in args.only]
    if args.seconds:
        plan = [
            Scenario(
                s.key, s.label, s.kind, s.connections, s.max_messages * 100, args.seconds, s.warmup
            )
            for s in plan
        ]
    workdir = Path(tempfile.mkdtemp(prefix="flagging-bench-"))
    try:
        return run(args, templates, sizes, plan, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(
    args: argparse.Namespace,
    templates: dict[str, list[Template]],
    sizes: dict[str, int],
    plan: list[Scenario],
    workdir: Path,
) -> int:
    """Start both servers, run the plan against each, stop them, print the report."""
    run_id = f"{random.randrange(0x10000):04X}"
    servers: list[Server] = []
    rows: list[tuple[Scenario, Result, Result]] = []
    accepted = {"ours": 0, "reference": 0}
    ours_db: Path | None = None
    ref_db: Path | None = None
    status = 0
    try:
        ours, ours_db = start_ours(workdir)
        servers.append(ours)
        ref, ref_db = start_reference(workdir)
        servers.append(ref)
        print(
            f"ours on {ours.host}:{ours.port} (pid {ours.proc.pid}), reference on "
            f"{ref.host}:{ref.port} (pid {ref.proc.pid}); {os.cpu_count()} CPUs; "
            f"work folder {workdir}",
            flush=True,
        )
        for sc in plan:
            results = {}
            # Reference first, then ours, per scenario: both see the same machine state.
            for name, server in (("reference", ref), ("ours", ours)):
                tag = f"{run_id}{sc.key.upper()}{name[0].upper()}"
                res, aa = run_load(
                    server,
                    templates[sc.kind],
                    tag=tag,
                    connections=sc.connections,
                    warmup=sc.warmup,
                    max_messages=sc.max_messages,
                    max_seconds=sc.max_seconds,
                )
                accepted[name] += aa
                results[name] = res
                print(
                    f"  ({sc.key}) {name:<9} x{sc.connections}: {res.rate:8.1f} msg/s, "
                    f"p50 {res.percentile(50):.2f} ms, p99 {res.percentile(99):.2f} ms, "
                    f"{res.messages} msgs in {res.seconds:.1f} s, ACKs {dict(res.codes)}",
                    flush=True,
                )
                if res.first_problem:
                    print(f"    first problem ({name}): {res.first_problem.strip()[:600]}")
            rows.append((sc, results["ours"], results["reference"]))
    except Exception as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 2
    finally:
        for server in servers:
            server.stop()

    if rows:
        print_table(rows, sizes)
        status = max(status, report_checks(rows, accepted, ours_db, ref_db))
        mdm8 = [(o, r) for sc, o, r in rows if sc.key == "b"]
        if mdm8 and mdm8[0][1].rate:
            ratio = mdm8[0][0].rate / mdm8[0][1].rate
            verdict = "MET" if ratio >= TARGET_RATIO else "NOT MET"
            print(
                f"target ours >= {TARGET_RATIO:.0%} of reference on 8 connections (MDM): "
                f"{ratio:.0%} -> {verdict}"
            )
            if args.check and ratio < TARGET_RATIO:
                status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())

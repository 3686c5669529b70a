"""MLLP ingest benchmark: our service against a minimal reference pipeline, same client, same box.

Run `.venv/bin/python bench/ingest.py` (SQLite, about 4 minutes), or with `--database
postgresql://postgres@127.0.0.1:5432/` (PostgreSQL, about 5 minutes); `--quick` for a short run
that compares two commits. Every server listens on 127.0.0.1; each group of runs gets fresh
databases (on PostgreSQL, databases named flagging_bench_<pid>_... that the bench creates and
drops); the same load generator drives ours and the reference, so the ratio ours/reference is
what to compare across machines. See bench/README.md.

The reference server (`--reference-server URL`) is the floor any durable-before-ACK Python
pipeline pays: one thread per connection, buffered recv, VT..FS CR framing, split-based
extraction of a few MSH fields, one insert committed per message (SQLite: under a lock, WAL,
synchronous=FULL; PostgreSQL: an autocommit INSERT on the connection's own session), an ACK.

One file of about 1,000 lines, beyond the 400 a product module keeps to, because it is a script
read top to bottom: the messages, the reference server it starts as itself, the load generator,
the table and the targets belong to one measurement (bench/service.py holds what fuzz.py
shares with it).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.service import (  # noqa: E402  (the project root must be on sys.path first)
    ServiceProcess,
    prepare,
    service_env,
    start_all,
    stop_on_sigterm,
)
from tests import samples  # noqa: E402

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
END = FS + CR
UID = "@UID@"  # placeholder in message templates: replaced by a unique id per message


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


def practice_codes(count: int) -> list[str]:
    """`count` GP practice ODS codes, the samples' own first (A81001, A81002, ...)."""
    first = int(samples.PRACTICE[1:])
    return [f"{samples.PRACTICE[0]}{first + i:05d}" for i in range(count)]


def _people(practices: int) -> list[tuple[str, str]]:
    """(NHS number, practice) pairs: every practice, the test NHS numbers in turn."""
    count = max(practices, len(samples.NHS_NUMBERS))
    codes = practice_codes(practices)
    return [(samples.NHS_NUMBERS[i % 5], codes[i % practices]) for i in range(count)]


def mdm_templates(practices: int) -> list[Template]:
    """~6.6 KB MDM^T02 with 40 OBX TX lines, spread over `practices` practices."""
    lines = _report_lines(40, 130)
    return [
        Template(
            samples.mdm(
                "T02",
                control_id=UID,
                number=f"DOC-{UID}",
                nhs_number=nhs,
                practice=practice,
                lines=lines,
            )
        )
        for nhs, practice in _people(practices)
    ]


def oru_templates(practices: int) -> list[Template]:
    """~200 KB ORU^R01 whose report is a base64 PDF in one OBX ED."""
    observations = samples.obx_pdf(_fake_pdf(148 * 1024))
    return [
        Template(
            samples.oru(
                control_id=UID,
                number=f"RPT-{UID}",
                nhs_number=nhs,
                practice=practice,
                observations=observations,
            )
        )
        for nhs, practice in _people(practices)
    ]


# Reference server -------------------------------------------------------------------------------


REF_SCHEMA = {
    "sqlite": """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    message_type TEXT NOT NULL,
    control_id TEXT NOT NULL,
    raw BLOB NOT NULL
)
""",
    "postgresql": """
CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    received_at TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    message_type TEXT NOT NULL,
    control_id TEXT NOT NULL,
    raw BYTEA NOT NULL
)
""",
}
REF_INSERT = (
    "INSERT INTO messages (received_at, sending_facility, message_type, control_id, raw) "
    "VALUES ({0}, {0}, {0}, {0}, {0})"
)


def _connect_reference_sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


Insert = Callable[[tuple[object, ...]], None]


def _reference_writer(url: str) -> Callable[[], tuple[Insert, Callable[[], None]]]:
    """For each connection: a function that durably inserts one row, and one that closes."""
    if url.startswith("postgresql"):

        def open_pg() -> tuple[Insert, Callable[[], None]]:
            db = psycopg.connect(url, autocommit=True)
            sql = REF_INSERT.format("%s")

            def insert(row: tuple[object, ...]) -> None:
                db.execute(sql, row)

            return insert, db.close

        return open_pg

    path = url.removeprefix("sqlite:///")
    write_lock = threading.Lock()  # one writer at a time in this process, as SQLite wants

    def open_sqlite() -> tuple[Insert, Callable[[], None]]:
        db = _connect_reference_sqlite(path)
        sql = REF_INSERT.format("?")

        def insert(row: tuple[object, ...]) -> None:
            with write_lock:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(sql, row)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

        return insert, db.close

    return open_sqlite


def _reference_ack(payload: bytes) -> bytes:
    msh = payload.split(CR, 1)[0].split(b"|")
    msh += [b""] * (12 - len(msh))
    control_id = msh[9]
    now = time.strftime("%Y%m%d%H%M%S").encode()
    event = msh[8].split(b"^")[1] if b"^" in msh[8] else b""
    return b"MSH|^~\\&|%s|%s|%s|%s|%s||ACK^%s^ACK|A%s|P|%s\rMSA|AA|%s\r" % (
        msh[4], msh[5], msh[2], msh[3], now, event, control_id, msh[11], control_id,
    )  # fmt: skip


def run_reference_server(url: str, host: str, port: int) -> int:
    """Serve MLLP until SIGTERM: one thread per connection, one durable insert per message."""
    open_writer = _reference_writer(url)

    def serve(conn: socket.socket) -> None:
        insert, close = open_writer()
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
                    msh = payload.split(CR, 1)[0].split(b"|")
                    insert(
                        (
                            time.strftime("%Y-%m-%dT%H:%M:%S"),
                            msh[3].decode("latin-1"),
                            msh[8].decode("latin-1"),
                            msh[9].decode("latin-1"),
                            payload,
                        )
                    )
                    conn.sendall(VT + _reference_ack(payload) + END)
        except OSError:
            return
        finally:
            conn.close()
            close()

    server = socket.create_server((host, port), backlog=128)
    bound_host, bound_port = server.getsockname()[:2]
    print(f"reference: MLLP on {bound_host}:{bound_port}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# Databases and servers --------------------------------------------------------------------------


class Databases:
    """The run's databases: SQLite files in the work folder, or databases on a PostgreSQL
    server named flagging_bench_<pid>_<name>, created for the run and all dropped at its end
    (so two runs on one server never collide)."""

    def __init__(self, server_url: str, workdir: Path) -> None:
        self.server_url = server_url
        self.workdir = workdir
        self.prefix = f"flagging_bench_{os.getpid()}"
        self.created: list[str] = []

    @property
    def postgresql(self) -> bool:
        return self.server_url.startswith("postgresql")

    def describe(self) -> str:
        if not self.postgresql:
            return f"SQLite {sqlite3.sqlite_version} in {self.workdir}"
        with self._admin() as admin:
            row = admin.execute("SHOW server_version").fetchone()
        parts = urlsplit(self.server_url)
        return f"PostgreSQL {row[0] if row else '?'} at {parts.hostname}:{parts.port or 5432}"

    @contextlib.contextmanager
    def _admin(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            yield conn

    def url(self, name: str) -> str:
        if not self.postgresql:
            return f"sqlite:///{self.workdir / f'{name}.sqlite3'}"
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(path=f"/{self.prefix}_{name}"))

    def create(self, name: str, template: str = "") -> str:
        """A new database (a copy of `template`, another of the run's, when given); its URL."""
        url = self.url(name)
        if self.postgresql:
            copy = f' TEMPLATE "{self.prefix}_{template}"' if template else ""
            with self._admin() as admin:
                admin.execute(f'CREATE DATABASE "{self.prefix}_{name}"{copy}')
        elif template:
            with (
                sqlite3.connect(self.url(template).removeprefix("sqlite:///")) as source,
                sqlite3.connect(url.removeprefix("sqlite:///")) as target,
            ):
                source.backup(target)
        self.created.append(name)
        return url

    def execute(self, url: str, sql: str) -> None:
        if self.postgresql:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql)
        else:
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
                conn.execute(sql)

    def count(self, url: str, sql: str) -> int:
        if self.postgresql:
            with psycopg.connect(url) as conn:
                row = conn.execute(sql).fetchone()
        else:
            path = url.removeprefix("sqlite:///")
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def drop(self, name: str) -> None:
        if name not in self.created:
            return
        self.created.remove(name)
        if self.postgresql:
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.prefix}_{name}" WITH (FORCE)')
        else:
            path = Path(self.url(name).removeprefix("sqlite:///"))
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)

    def drop_all(self) -> None:
        for name in list(reversed(self.created)):
            try:
                self.drop(name)
            except Exception as exc:  # report and go on: the others still need dropping
                print(f"could not drop database {name}: {exc}", file=sys.stderr)


MLLP_ADDRESSES = [r"MLLP listener on ([^\s:]+):(\d+)\n", r"flagging: MLLP on ([^\s:]+):(\d+)\n"]


def start_ours(env: dict[str, str], processes: int) -> list[ServiceProcess]:
    """`processes` `flagging mllp` listeners on their own free ports, one database."""
    argv = [str(ROOT / ".venv" / "bin" / "flagging"), "mllp", "--port", "0"]
    return start_all(
        [
            partial(ServiceProcess, f"ours #{i + 1}", argv, env, MLLP_ADDRESSES)
            for i in range(processes)
        ]
    )


def start_reference(url: str, processes: int) -> list[ServiceProcess]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--reference-server", url]
    pattern = [r"reference: MLLP on ([^\s:]+):(\d+)\n"]
    env = dict(os.environ)
    return start_all(
        [
            partial(ServiceProcess, f"reference #{i + 1}", argv, env, pattern)
            for i in range(processes)
        ]
    )


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
    servers: list[ServiceProcess],
    templates: list[Template],
    *,
    tag: str,
    connections: int,
    warmup: int,
    max_messages: int,
    max_seconds: float,
) -> tuple[Result, int]:
    """Drive `servers` (connection i goes to server i mod n); return the measured result and
    the number of AAs (warm-up included)."""
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
            conn = Connection(*servers[index % len(servers)].address)
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
    cpu0 = sum(server.cpu_seconds() for server in servers)
    barrier.wait()
    for t in threads:
        t.join(max_seconds + 120)
    result.cpu = sum(server.cpu_seconds() for server in servers) - cpu0
    result.seconds = (max(ends) if ends else time.perf_counter()) - timing["start"]
    return result, accepted[0]


# Plan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    kind: str  # mdm | oru
    connections: int
    max_messages: int
    max_seconds: float
    warmup: int  # messages per connection before the clock starts
    processes: int = 1
    practices: int = 1

    @property
    def name(self) -> str:
        return f"({self.key}) {self.label} x{self.connections} p{self.processes} k{self.practices}"


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
        Scenario("a", "MDM 6.6 KB", "mdm", 1, 20_000, 12.0, 100),
        Scenario("b", "MDM 6.6 KB", "mdm", 8, 30_000, 15.0, 30),
        Scenario("c1", "ORU 200 KB", "oru", 1, 2_000, 10.0, 20),
        Scenario("c8", "ORU 200 KB", "oru", 8, 2_000, 10.0, 5),
    ]


def make_plan(
    *,
    quick: bool,
    postgresql: bool,
    only: list[str] | None,
    processes: list[int],
    practices: list[int],
    seconds: float | None,
) -> list[Scenario]:
    """The runs, grouped by (processes, practices): each group gets fresh databases.

    The MDM over 8 connections runs at every process count and practice count asked for; the
    others at the first process count, and the ORU at the first practice count only (one
    connection uses one listener whatever the number of processes)."""
    plan = []
    for base in scenarios(quick):
        if only and base.key not in only:
            continue
        for n in processes if base.key == "b" else processes[:1]:
            for k in practices if base.kind == "mdm" else practices[:1]:
                sc = replace(base, processes=n, practices=k)
                if seconds:
                    sc = replace(sc, max_messages=sc.max_messages * 100, max_seconds=seconds)
                plan.append(sc)
    plan.sort(key=lambda s: (s.processes, s.practices))  # stable: a, b, c1, c8 in each group
    return plan


# Running ----------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: Scenario
    ours: Result
    ref: Result
    load: float  # the machine's 1-minute load average when the pair ended

    @property
    def ratio(self) -> float:
        return self.ours.rate / self.ref.rate if self.ref.rate else float("nan")


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    status: int = 0


def run(args: argparse.Namespace, plan: list[Scenario], dbs: Databases, workdir: Path) -> Outcome:
    """Run the plan group by group: fresh databases, servers started, each scenario against the
    reference and then ours, servers stopped, databases checked against the AAs, dropped."""
    run_id = f"{random.randrange(0x10000):04X}"
    out = Outcome()
    most = max(s.practices for s in plan)
    codes = practice_codes(most)
    print(
        f"{dbs.describe()}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"registering sender {samples.SENDER} and {most} practice(s) "
        f"{codes[0]}{'..' + codes[-1] if most > 1 else ''}",
        flush=True,
    )
    instance = workdir / "instance"
    template = dbs.create("template")
    prepare(service_env(instance, template), samples.SENDER, codes, "Bench")
    templates: dict[tuple[str, int], list[Template]] = {}
    groups: dict[tuple[int, int], list[Scenario]] = {}
    for sc in plan:
        groups.setdefault((sc.processes, sc.practices), []).append(sc)
    for number, ((processes, practices), group) in enumerate(groups.items(), start=1):
        ours_url = dbs.create(f"g{number}", template="template")
        ref_url = dbs.create(f"g{number}_ref")
        dbs.execute(ref_url, REF_SCHEMA["postgresql" if dbs.postgresql else "sqlite"])
        accepted = {"ours": 0, "reference": 0}
        servers: list[ServiceProcess] = []
        try:
            ours = start_ours(service_env(instance, ours_url), processes)
            servers += ours
            ref = start_reference(ref_url, processes)
            servers += ref
            print(
                f"group {number}: {processes} process(es), {practices} practice(s); ours on "
                + ", ".join(f"{h}:{p}" for h, p in (s.address for s in ours))
                + "; reference on "
                + ", ".join(f"{h}:{p}" for h, p in (s.address for s in ref)),
                flush=True,
            )
            for sc in group:
                key = (sc.kind, practices)
                if key not in templates:
                    make = mdm_templates if sc.kind == "mdm" else oru_templates
                    templates[key] = make(practices)
                results = {}
                # Reference first, then ours, per scenario: both see the same machine state.
                for name, target in (("reference", ref), ("ours", ours)):
                    tag = f"{run_id}{number}{sc.key.upper()}{name[0].upper()}"
                    res, aa = run_load(
                        target,
                        templates[key],
                        tag=tag,
                        connections=sc.connections,
                        warmup=sc.warmup,
                        max_messages=sc.max_messages,
                        max_seconds=sc.max_seconds,
                    )
                    accepted[name] += aa
                    results[name] = res
                    print(
                        f"  {sc.name} {name:<9}: {res.rate:8.1f} msg/s, "
                        f"p50 {res.percentile(50):.2f} ms, p99 {res.percentile(99):.2f} ms, "
                        f"{res.messages} msgs in {res.seconds:.1f} s, ACKs {dict(res.codes)}",
                        flush=True,
                    )
                    if res.first_problem:
                        print(f"    first problem ({name}): {res.first_problem.strip()[:600]}")
                out.rows.append(Row(sc, results["ours"], results["reference"], os.getloadavg()[0]))
        finally:
            for server in servers:
                server.stop()
        out.status = max(out.status, check_stored(dbs, ours_url, ref_url, accepted))
        dbs.drop(f"g{number}")
        dbs.drop(f"g{number}_ref")
    return out


def check_stored(dbs: Databases, ours_url: str, ref_url: str, accepted: dict[str, int]) -> int:
    """Compare what each database holds with the AAs its server sent; 1 on a mismatch."""
    docs = dbs.count(ours_url, "SELECT count(*) FROM documents")
    versions = dbs.count(ours_url, "SELECT count(*) FROM document_versions")
    received = dbs.count(ours_url, "SELECT count(*) FROM inbound_messages")
    stored = dbs.count(ref_url, "SELECT count(*) FROM messages")
    ours_ok = docs == accepted["ours"]
    ref_ok = stored == accepted["reference"]
    print(
        f"  ours: {accepted['ours']} AA (warm-up included); database holds {received} messages, "
        f"{docs} documents, {versions} versions: {'OK' if ours_ok else 'MISMATCH (a bug)'}; "
        f"reference: {accepted['reference']} AA, {stored} rows: {'OK' if ref_ok else 'MISMATCH'}",
        flush=True,
    )
    return 0 if ours_ok and ref_ok else 1


# Report -----------------------------------------------------------------------------------------


def report_answers(rows: list[Row]) -> int:
    """Print the non-AA answers of each side; 1 if there were any."""
    status = 0
    for name in ("ours", "reference"):
        bad: collections.Counter[str] = collections.Counter()
        for row in rows:
            res = row.ours if name == "ours" else row.ref
            bad.update({c: n for c, n in res.codes.items() if c != "AA"})
            bad.update({f"{c} (warm-up)": n for c, n in res.warmup_bad.items()})
        if bad:
            status = 1
            print(f"NON-AA answers from {name} (a bug): {dict(bad)}")
        else:
            print(f"{name}: every ACK was AA")
    return status


def _one_process(rows: list[Row], row: Row) -> Row | None:
    for other in rows:
        sc = other.scenario
        if sc.processes == 1 and replace(sc, processes=row.scenario.processes) == row.scenario:
            return other
    return None


def print_table(rows: list[Row], sizes: dict[str, int]) -> None:
    head = (
        f"{'scenario':<20} {'prac':>4} {'conn':>4} {'proc':>4}  {'ours msg/s':>10} "
        f"{'ref msg/s':>9} {'ours/ref':>8} {'x 1 proc':>8}  {'ours p50':>8} {'ours p99':>8} "
        f"{'ref p99':>7}  {'ours cpu':>8} {'ref cpu':>7}  {'n ours':>6} {'n ref':>6} {'load':>5}"
    )
    print()
    print(
        "ACK latency in ms; cpu = server processes' CPU ms per message (ours with its SQLite "
        "writer; not PostgreSQL's backends); x 1 proc = ours msg/s against the same scenario "
        "with 1 process (the reference's own in brackets); load = 1-minute load average"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        sc, ours, ref = row.scenario, row.ours, row.ref
        base = _one_process(rows, row) if sc.processes > 1 else None
        scale = f"{ours.rate / base.ours.rate:.2f}x" if base and base.ours.rate else ""
        ref_scale = f"({ref.rate / base.ref.rate:.2f}x)" if base and base.ref.rate else ""
        cpu_o = ours.cpu / ours.messages * 1e3 if ours.messages else float("nan")
        cpu_r = ref.cpu / ref.messages * 1e3 if ref.messages else float("nan")
        print(
            f"{'(' + sc.key + ') ' + sc.label:<20} {sc.practices:>4} {sc.connections:>4} "
            f"{sc.processes:>4}  {ours.rate:>10.1f} {ref.rate:>9.1f} {row.ratio:>8.0%} "
            f"{scale:>8}  {ours.percentile(50):>8.2f} {ours.percentile(99):>8.2f} "
            f"{ref.percentile(99):>7.2f}  {cpu_o:>8.2f} {cpu_r:>7.2f}  "
            f"{ours.messages:>6} {ref.messages:>6} {row.load:>5.1f}"
            + (f"  ref {ref_scale}" if ref_scale else "")
        )
    print("message sizes: " + ", ".join(f"{k} {v:,} bytes" for k, v in sizes.items()))


# Issue 13's "Done when" -------------------------------------------------------------------------


def _where(sc: Scenario) -> str:
    return (
        f"{sc.practices} practice{'s' if sc.practices > 1 else ''}, "
        f"{sc.processes} process{'es' if sc.processes > 1 else ''}"
    )


def _verdict(label: str, figures: list[tuple[bool, str]], missing: list[str]) -> tuple[bool, str]:
    met = bool(figures) and all(ok for ok, _ in figures) and not missing
    shown = "; ".join(text for _, text in figures) or "no figure"
    if missing:
        shown += "; not measured in this run: " + ", ".join(missing)
    return met, f"{label}: {shown} -> {'MET' if met else 'NOT MET'}"


def targets(rows: list[Row], postgresql: bool) -> list[tuple[bool, str]]:
    """One (met, line) per target of issue 13's "Done when" for this database."""
    mdm = [r for r in rows if r.scenario.kind == "mdm"]
    by = {(r.scenario.connections, r.scenario.processes, r.scenario.practices): r for r in mdm}
    processes = (1, 2) if postgresql else (1,)
    cells = {
        c: [(c, n, k) for n in (processes if c == 8 else (1,)) for k in (1, 100)] for c in (1, 8)
    }

    def need(wanted: list[tuple[int, int, int]]) -> list[str]:
        return [f"{c} conn {k} prac {n} proc" for c, n, k in wanted if (c, n, k) not in by]

    def share(label: str, connections: int, minimum: float) -> tuple[bool, str]:
        figures = [
            (r.ratio >= minimum, f"{_where(r.scenario)} {r.ratio:.0%}")
            for r in mdm
            if r.scenario.connections == connections
        ]
        return _verdict(
            f"{label} >= {minimum:.0%} of the reference", figures, need(cells[connections])
        )

    if not postgresql:
        keys = {r.scenario.key for r in rows}
        every = [
            (r.ratio >= 0.50, f"{r.scenario.key} {_where(r.scenario)} {r.ratio:.0%}") for r in rows
        ]
        missing = [f"({k})" for k in ("a", "b", "c1", "c8") if k not in keys]
        return [
            _verdict(
                "SQLite: every scenario >= 50% of the reference",
                every,
                missing + need(cells[1] + cells[8]),
            ),
            share("SQLite: 8 connections", 8, 0.60),
        ]
    scaling, never_lower = [], []
    for k in (1, 100):
        for (fewer, more), what in (
            (((1, 1, k), (8, 1, k)), "1 -> 8 connections"),
            (((8, 1, k), (8, 2, k)), "1 -> 2 processes"),
        ):
            low, high = by.get(fewer), by.get(more)
            if not (low and high and low.ours.rate and low.ref.rate):
                continue
            x = high.ours.rate / low.ours.rate
            never_lower.append((x >= 1.0, f"{k} practice(s) {what} {x:.2f}x"))
            if what == "1 -> 2 processes":
                ref_x = high.ref.rate / low.ref.rate
                scaling.append((x >= 1.3, f"{k} practice(s) {x:.2f}x (reference {ref_x:.2f}x)"))
    p99 = [
        (r.ours.percentile(99) < 50, f"{_where(r.scenario)} {r.ours.percentile(99):.1f} ms")
        for r in mdm
        if r.scenario.connections == 8
    ]
    return [
        share("PostgreSQL: 8 connections", 8, 0.50),
        share("PostgreSQL: 1 connection", 1, 0.40),
        _verdict(
            "PostgreSQL: 2 processes >= 1.3x 1 process (8 connections)", scaling, need(cells[8])
        ),
        _verdict(
            "PostgreSQL: throughput never lower with more connections or processes",
            never_lower,
            need(cells[1] + cells[8]),
        ),
        _verdict("PostgreSQL: p99 ACK latency < 50 ms at 8 connections", p99, need(cells[8])),
    ]


# Command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, 1 practice only")
    parser.add_argument(
        "--database",
        metavar="URL",
        default="",
        help="a PostgreSQL server (postgresql://postgres@127.0.0.1:5432/) to run on instead of "
        "SQLite; the bench creates its databases there and drops them at the end",
    )
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="N listener processes (and N reference processes); default 1, and 2 as well for "
        "the 8-connection MDM on PostgreSQL",
    )
    parser.add_argument(
        "--practices",
        type=int,
        metavar="K",
        help="spread the messages over K practices; default 1 and 100 (1 with --quick)",
    )
    parser.add_argument(
        "--only",
        choices=["a", "b", "c1", "c8"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--seconds", type=float, help="override each run's wall-time bound")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target of issue 13 is not met"
    )
    parser.add_argument("--reference-server", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_server:
        return run_reference_server(args.reference_server, args.host, args.port)
    if args.database and not args.database.startswith(("postgresql://", "postgres://")):
        parser.error("--database takes a postgresql:// URL (SQLite is the default)")
    if (args.processes or 1) < 1 or (args.practices or 1) < 1:
        parser.error("--processes and --practices take a whole number from 1")

    postgresql = bool(args.database)
    plan = make_plan(
        quick=args.quick,
        postgresql=postgresql,
        only=args.only,
        processes=[args.processes] if args.processes else ([1, 2] if postgresql else [1]),
        practices=[args.practices] if args.practices else ([1] if args.quick else [1, 100]),
        seconds=args.seconds,
    )
    sizes = {
        "MDM": len(mdm_templates(1)[0].render(b"X" * 12)),
        "ORU": len(oru_templates(1)[0].render(b"X" * 12)),
    }
    stop_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="flagging-bench-"))
    dbs = Databases(args.database.replace("postgres://", "postgresql://", 1), workdir)
    out = Outcome()
    try:
        out = run(args, plan, dbs, workdir)
    except Exception as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        out.status = 2
    finally:
        dbs.drop_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if not out.rows:
        return out.status or 2
    print_table(out.rows, sizes)
    status = max(out.status, report_answers(out.rows))
    print()
    verdicts = targets(out.rows, postgresql)
    for _, line in verdicts:
        print(line)
    if args.check and not all(met for met, _ in verdicts):
        status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())

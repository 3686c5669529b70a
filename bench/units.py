"""What a message costs the SQLite writer: the unit that crosses to it, and the pages it writes.

Run `.venv/bin/python bench/units.py`. It reads the bench's messages (bench/ingest.py: the
6.6 KB MDM^T02 and the ~200 KB ORU^R01 with a PDF) through the HL7 edge as the listener does,
catches the unit of work the receiver hands to the writer process (flagging/receive.py
`Receive`), and prints its pickled size and the time of a dumps plus a loads, with the same
for the reply that comes back; then the bytes the SQLite database grows by per MDM message
(rows and indexes, over 500 messages), and the WAL pages an MDM message committed alone
writes (as with one connection), table by table and index by index, against the pages of the
reference's one insert (bench/ingest.py) committed alone, and what a commit of as many pages as
each costs on this machine (each page is written to the WAL and synced). Deterministic sizes;
the times are a rough guide.

`bench/units.py --database postgresql://postgres@127.0.0.1:5432/` prints PostgreSQL's side
instead: the WAL records and bytes an MDM message committed alone writes, by kind of record
(pg_walinspect, on a database of its own that it drops), against the reference's insert. The
WAL is the server's: run it while nothing else writes there.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    REF_INSERT,
    REF_SCHEMA,
    Databases,
    _connect_reference_sqlite,
    mdm_templates,
    oru_templates,
)
from bench.service import prepare, service_env  # noqa: E402


def _handler(env: dict[str, str]) -> Any:
    """A message handler with the in-process group commit, on the database `env` names."""
    # Imported here, as bench/ingest.py's helpers need nothing of the service.
    from config.settings import load_settings
    from flagging.receiver import Receiver
    from flagging.storage.engine import Database
    from hl7.handler import MessageHandler

    settings = load_settings(env)
    return MessageHandler(Receiver(Database(settings), settings))


def _growth(env: dict[str, str], count: int = 500) -> float:
    """Bytes the database file grows by per 6.6 KB MDM message, after a checkpoint."""
    from flagging.bindings import Peer

    handler = _handler(env)
    database = Path(env["FLAGGING_INSTANCE_PATH"]) / "flagging.sqlite3"
    template = mdm_templates(1)[0]

    def send(first: int, number: int) -> None:
        for i in range(first, first + number):
            raw = template.render(f"G{i:08d}".encode())
            reply = handler.handle(raw, transport="mllp", connection=Peer("127.0.0.1"))
            assert b"MSA|AA" in reply.ack, reply.ack

    def size() -> int:
        with sqlite3.connect(database) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages, free = (
                connection.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "freelist_count")
            )
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * page_size)

    send(0, 100)  # past the first pages of every table and index
    before = size()
    send(100, count)
    return (size() - before) / count


_WAL_HEADER, _FRAME_HEADER = 32, 24


def _wal_pages(database: Path, send: Any, count: int) -> tuple[float, Counter[str]]:
    """WAL pages per message of `send(i)` for i in range(count), each committed alone: the
    total, and by the table or index each page belongs to (SQLite's dbstat)."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    for i in range(count):
        send(i)
    wal = Path(f"{database}-wal").read_bytes()
    frames = range(_WAL_HEADER, len(wal) - _FRAME_HEADER + 1, _FRAME_HEADER + page_size)
    pages = [struct.unpack_from(">I", wal, offset)[0] for offset in frames]
    with sqlite3.connect(database) as connection:
        owner = dict(connection.execute("SELECT pageno, name FROM dbstat"))
        in_log = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert in_log == len(pages), "the WAL was started again while counting"
    by = Counter(owner.get(page, "(free)") for page in pages)
    return len(pages) / count, by


def _lone_commits(env: dict[str, str], count: int = 50) -> tuple[float, float]:
    """Print the WAL pages of a message committed alone, ours and the reference's; return
    the two."""
    from flagging.bindings import Peer

    handler = _handler(env)
    template = mdm_templates(1)[0]

    def ours(i: int) -> None:
        raw = template.render(f"W{i:08d}".encode())
        reply = handler.handle(raw, transport="mllp", connection=Peer("127.0.0.1"))
        assert b"MSA|AA" in reply.ack, reply.ack

    for i in range(100):  # past the first pages of every table and index
        ours(10_000 + i)
    database = Path(env["FLAGGING_INSTANCE_PATH"]) / "flagging.sqlite3"
    total, by = _wal_pages(database, ours, count)
    handler.close()

    reference = Path(env["FLAGGING_INSTANCE_PATH"]) / "reference.sqlite3"
    connection = _connect_reference_sqlite(str(reference))
    connection.execute(REF_SCHEMA["sqlite"])
    raw = template.render(b"R")

    def theirs(i: int) -> None:
        connection.execute(REF_INSERT.format("?"), ("now", "RXX", "MDM^T02", str(i), raw))

    for i in range(100):
        theirs(10_000 + i)
    ref_total, _ = _wal_pages(reference, theirs, count)
    connection.close()
    print(
        f"WAL pages of an MDM message committed alone: {total:.1f} "
        f"(the reference's insert: {ref_total:.1f}); by table and index:"
    )
    for name, pages in by.most_common():
        print(f"  {pages / count:5.2f} {name}")
    return total, ref_total


def _commit_cost(folder: Path, pages: int, count: int = 1500) -> float:
    """Wall ms of a transaction writing `pages` pages (one 3 KB row in each of `pages` tables)
    and committing (WAL, synchronous=FULL, the WAL written over rather than grown)."""
    connection = _connect_reference_sqlite(str(folder / f"pages{pages}.sqlite3"))
    connection.execute("PRAGMA wal_autocheckpoint=4000")
    for table in range(pages):
        connection.execute(f"CREATE TABLE t{table} (id INTEGER PRIMARY KEY, v BLOB)")
    row = bytes(3000)

    def commit() -> None:
        connection.execute("BEGIN")
        for table in range(pages):
            connection.execute(f"INSERT INTO t{table} (v) VALUES (?)", (row,))  # noqa: S608
        connection.execute("COMMIT")

    for _ in range(5000 // pages + 200):  # past the WAL's first fill: written over from here
        commit()
    started = time.perf_counter()
    for _ in range(count):
        commit()
    connection.close()
    return 1e3 * (time.perf_counter() - started) / count


def _commit_costs(folder: Path, sizes: tuple[int, int], rounds: int = 3) -> None:
    """Print what a commit costs by its pages on this machine, the two sizes alternating."""
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for round_ in range(rounds):
        for size in sizes:
            round_folder = folder / f"round{round_}"
            round_folder.mkdir(exist_ok=True)
            times[size].append(_commit_cost(round_folder, size))
    small, large = (sorted(times[size])[rounds // 2] for size in sizes)
    print(
        f"A commit of {sizes[0]} pages: {small:.3f} ms; of {sizes[1]} pages: {large:.3f} ms "
        f"({large / small:.1f}x; medians of {rounds} alternating rounds)"
    )


_WAL_STATS = (
    'SELECT "resource_manager/record_type", count, combined_size'
    " FROM pg_get_wal_stats(%s, %s, true) WHERE count > 0"
)


def _wal_records(url: str, send: Any, count: int) -> tuple[int, dict[str, tuple[int, int]]]:
    """PostgreSQL: WAL bytes of `send(i)` for i in range(count), and (records, bytes) by
    kind of record (pg_walinspect: resource manager and record type)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        for i in range(count):
            send(i)
        end = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        assert start is not None
        assert end is not None
        size = conn.execute("SELECT %s::pg_lsn - %s::pg_lsn", (end[0], start[0])).fetchone()
        rows = conn.execute(_WAL_STATS, (start[0], end[0])).fetchall()
    assert size is not None
    return int(size[0]), {str(name): (int(n), int(b)) for name, n, b in rows}


def _postgresql(server: str, count: int = 200) -> None:
    """Print the WAL an MDM message committed alone writes on PostgreSQL, ours and the
    reference's, by kind of record."""
    import psycopg

    from flagging.bindings import Peer

    with tempfile.TemporaryDirectory(prefix="units-") as folder:
        databases = Databases(server, Path(folder))
        try:
            url = databases.create("units")
            env = service_env(Path(folder), url)
            prepare(env, "RXX", ["A81001"], "bench")
            databases.execute(url, "CREATE EXTENSION pg_walinspect")
            databases.execute(url, REF_SCHEMA["postgresql"])
            handler = _handler(env)
            peer = Peer("127.0.0.1")
            template = mdm_templates(1)[0]

            def ours(i: int) -> None:
                raw = template.render(f"P{i:08d}".encode())
                assert b"MSA|AA" in handler.handle(raw, transport="mllp", connection=peer).ack

            for i in range(100):  # past the first pages of every table and index
                ours(10_000 + i)
            total, by = _wal_records(url, ours, count)
            handler.close()
            raw = template.render(b"R")
            with psycopg.connect(url, autocommit=True) as conn:

                def theirs(i: int) -> None:
                    conn.execute(REF_INSERT.format("%s"), ("now", "RXX", "MDM^T02", str(i), raw))

                for i in range(100):
                    theirs(10_000 + i)
                ref_total, ref_by = _wal_records(url, theirs, count)
        finally:
            databases.drop_all()
    print(
        f"PostgreSQL WAL of an MDM message committed alone: {total / count:,.0f} B in "
        f"{sum(n for n, _ in by.values()) / count:.1f} records (the reference's insert: "
        f"{ref_total / count:,.0f} B in {sum(n for n, _ in ref_by.values()) / count:.1f}); "
        "records and bytes a message by kind, ours / the reference's:"
    )
    for name in sorted(by, key=lambda n: -by[n][0]):
        theirs_n, theirs_b = ref_by.get(name, (0, 0))
        print(
            f"  {name:24} {by[name][0] / count:5.1f} / {theirs_n / count:4.1f} records, "
            f"{by[name][1] / count:7,.0f} / {theirs_b / count:6,.0f} B"
        )


def _catch(raw: bytes, env: dict[str, str]) -> tuple[Any, Any]:
    """The unit the receiver would send to the writer process for `raw`, and its reply."""
    from flagging.bindings import Peer

    handler = _handler(env)
    receiver = handler.receiver
    caught: list[Any] = []
    run = receiver._group.run

    def spy(work: Any) -> Any:
        caught.append(work)
        result = run(work)
        caught.append(result)
        return result

    receiver._group.run = spy
    reply = handler.handle(raw, transport="mllp", peer="127.0.0.1:1", connection=Peer("127.0.0.1"))
    assert b"MSA|AA" in reply.ack, reply.ack
    return caught[0], caught[1]


def _cost(value: Any, rounds: int = 2000) -> tuple[int, float]:
    data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    started = time.perf_counter()
    for _ in range(rounds):
        pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 (our own bytes)
    return len(data), 1e6 * (time.perf_counter() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", metavar="URL", help="a PostgreSQL server's URL")
    args = parser.parse_args()
    if args.database:
        _postgresql(args.database)
        return
    instance = Path(tempfile.mkdtemp(prefix="units-"))
    env = service_env(instance)
    prepare(env, "RXX", ["A81001"], "bench")
    messages = (("MDM 6.6 KB", mdm_templates(1)[0]), ("ORU 200 KB", oru_templates(1)[0]))
    for number, (name, template) in enumerate(messages):
        raw = template.render(f"U{number:08d}".encode())
        unit, verdict = _catch(raw, env)
        size, cost = _cost(unit, 2000 if len(raw) < 50_000 else 200)
        reply, reply_cost = _cost(verdict)
        print(
            f"{name}: message {len(raw)} B; unit pickles to {size} B "
            f"({cost:.1f} us dumps+loads); reply {reply} B ({reply_cost:.1f} us)"
        )
    print(f"SQLite database growth: {_growth(env):.0f} B per MDM message")
    ours, reference = _lone_commits(env)
    _commit_costs(instance, (round(reference), round(ours)))
    shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()

"""GP feed benchmark: a 100-event poll against a trivial endpoint on the same server, same run.

Run `.venv/bin/python bench/feed.py` (full, about 4 minutes: a store of 1,000,000 documents over
1,000 practices and one of 10,000) or with `--quick` (about a minute: 100,000 and 10,000).
`--database-url postgresql://...` runs it on PostgreSQL (the database is emptied first).

Each store is built with bulk Core inserts (documents, versions, feed events, GP tokens: what a
poll reads), then the real app (`cli.wiring.web_app`) is served by werkzeug's threaded WSGI
server on 127.0.0.1 in a separate process, keep-alive on. The same client (threads, each with one
persistent connection) drives `GET /healthz` and then
`GET /gp/v1/practices/{ods}/feed?after=N&limit=100` with a random practice, its own token and a
random N that leaves 100 events to return. Werkzeug, not a production server, because it is what
`flagging serve` runs, and because a faster server would only make the trivial endpoint, and so
the ratio, look worse; the ratio is what to compare across machines.

Targets: feed rate at least 25% of /healthz's, feed p99 at most 50 ms, and a poll at the large
store within 1.5x (p50) of one at 10,000 documents.

Longer than 400 lines because it is one measurement read top to bottom: building the stores,
the server it starts as itself, the client and the report.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, insert, text, update  # noqa: E402

from flagging.models import (  # noqa: E402
    Document,
    DocumentVersion,
    FeedEvent,
    GPToken,
    GPTokenPractice,
    InboundMessage,
    Practice,
    Sender,
    metadata,
)
from flagging.storage.migrate import upgrade  # noqa: E402
from flagging.tokens import hash_token  # noqa: E402
from tests import samples  # noqa: E402

PAGE = 100
TARGET_RATE_RATIO = 0.25
TARGET_P99_MS = 50.0
TARGET_GROWTH = 1.5
BATCH = 20_000
SLICES = 8
TEXT = (
    b"Admitted with chest pain. Troponin negative, ECG sinus rhythm. Discharged home on aspirin "
    b"and a statin; follow up in cardiology clinic in six weeks. Bloods to be repeated by GP."
)


@dataclass(frozen=True)
class Store:
    documents: int
    practices: int


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)


def _token(practice: int) -> str:
    return f"bench-token-{practice:05d}"


def _ods(practice: int) -> str:
    return f"A{practice:05d}"


def build(url: str, store: Store) -> dict[str, int]:
    """Fill an empty database; returns each practice's last event number."""
    engine = _engine(url)
    _reset(engine)
    now = datetime.now(UTC)
    sqlite = url.startswith("sqlite")
    with engine.begin() as conn:
        if sqlite:  # a throwaway store: no need to sync every batch
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.execute(
            insert(Sender).values(id=1, ods_code="RXX", name="Bench trust", created_at=now)
        )
        raw = samples.mdm()
        conn.execute(
            insert(InboundMessage).values(
                id=1,
                received_at=now,
                transport="mllp",
                raw=raw,
                size=len(raw),
                content_hash="0" * 64,
                sender_id=1,
                control_id="MSG0001",
                control_key="MSG0001",
                outcome="accepted",
            )
        )
        conn.execute(
            insert(Practice),
            [
                {"id": p, "ods_code": _ods(p), "name": f"Practice {p}", "created_at": now}
                for p in range(1, store.practices + 1)
            ],
        )
        conn.execute(
            insert(GPToken),
            [
                {"id": p, "token_hash": hash_token(_token(p)), "name": "bench", "created_at": now}
                for p in range(1, store.practices + 1)
            ],
        )
        conn.execute(
            insert(GPTokenPractice),
            [{"token_id": p, "practice_id": p} for p in range(1, store.practices + 1)],
        )
    seq = [0] * (store.practices + 1)
    for start in range(1, store.documents + 1, BATCH):
        ids = range(start, min(start + BATCH, store.documents + 1))
        documents, versions, events = [], [], []
        for i in ids:
            practice = (i % store.practices) + 1
            at = now - timedelta(seconds=store.documents - i)
            visibility = ("pending", "visible", "withheld")[i % 3]
            documents.append(
                {
                    "id": i,
                    "sender_id": 1,
                    "document_number": f"DOC-{i}",
                    "kind": "MDM",
                    "status": "current",
                    "nhs_number": samples.NHS_NUMBERS[i % len(samples.NHS_NUMBERS)],
                    "family_name": "TESTPATIENT",
                    "given_name": "ALEX",
                    "practice_ods_code": _ods(practice),
                    "practice_id": practice,
                    "latest_version": 1,
                    "document_type": "DS",
                    "title": "Discharge summary",
                    "author_code": "C1234567",
                    "visibility": visibility,
                    "auto_release": False,
                    "revision": 1,
                    "published": True,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            versions.append(
                {
                    "id": i,
                    "document_id": i,
                    "version": 1,
                    "message_id": 1,
                    "sender_id": 1,
                    "document_number": f"DOC-{i}",
                    "event": "T02",
                    "change": "original",
                    "document_type": "DS",
                    "title": "Discharge summary",
                    "author_code": "C1234567",
                    "content_type": "text/plain; charset=utf-8",
                    "content": TEXT,
                    "visibility": visibility,
                    "published": True,
                    "created_at": at,
                }
            )
            kinds = [("document.available", "pending")]
            if visibility != "pending":
                kinds.append(("visibility.changed", visibility))
            for kind, shown in kinds:
                seq[practice] += 1
                events.append(
                    {
                        "practice_id": practice,
                        "seq": seq[practice],
                        "type": kind,
                        "document_id": i,
                        "version_id": i,
                        "visibility": shown,
                        "created_at": at,
                    }
                )
        with engine.begin() as conn:
            if sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
            conn.execute(insert(Document), documents)
            conn.execute(insert(DocumentVersion), versions)
            conn.execute(insert(FeedEvent), events)
    with engine.begin() as conn:
        for p in range(1, store.practices + 1):
            conn.execute(update(Practice).where(Practice.id == p).values(feed_seq=seq[p]))
        if not sqlite:
            for table in ("documents", "document_versions", "feed_events", "practices"):
                conn.exec_driver_sql(f"ANALYZE {table}")
                # Table names are this file's own constants, never input.
                maximum = f"(SELECT max(id) FROM {table})"  # noqa: S608
                conn.exec_driver_sql(f"SELECT setval('{table}_id_seq', {maximum})")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return {_ods(p): seq[p] for p in range(1, store.practices + 1)}


# The server -----------------------------------------------------------------------------------


def serve(url: str, instance: str) -> None:
    """`--serve`: the real app on a free loopback port, printed on stdout, until killed."""
    import logging

    from werkzeug.serving import WSGIRequestHandler, make_server

    from cli.wiring import build as build_services
    from cli.wiring import web_app
    from config import load_settings

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    class KeepAlive(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"

    settings = load_settings(
        {
            "FLAGGING_ENV": "test",
            "FLAGGING_DATABASE_URL": url,
            "FLAGGING_INSTANCE_PATH": instance,
            "FLAGGING_SECRET_KEY": "bench",
        }
    )
    server = make_server(
        "127.0.0.1", 0, web_app(build_services(settings)), threaded=True, request_handler=KeepAlive
    )
    print(server.server_port, flush=True)
    server.serve_forever()


class Server:
    def __init__(self, url: str, instance: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", url, "--instance", instance],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# The client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int


@dataclass
class Sample:
    """Latencies (seconds) and the time they took, added up over several slices."""

    latencies: list[float]
    elapsed: float = 0.0

    def result(self) -> Result:
        every = sorted(self.latencies)
        return Result(
            rate=len(every) / self.elapsed,
            p50_ms=statistics.median(every) * 1000,
            p99_ms=every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
            requests=len(every),
        )


def load(
    port: int, paths: list[tuple[str, dict[str, str]]], threads: int, seconds: float
) -> Sample:
    """Drive GETs from `paths` (chosen at random) for `seconds`; every answer must be 200."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds
    errors: list[str] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = latencies[n]
        while time.monotonic() < stop:
            path, headers = paths[rng.randrange(len(paths))]
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"{path}: {response.status} {body[:200]!r}")
                return
        conn.close()

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    if errors:
        raise SystemExit(f"bench: request failed: {errors[0]}")
    return Sample([x for part in latencies for x in part], elapsed)


def poll_paths(last: dict[str, int], count: int = 5000) -> list[tuple[str, dict[str, str]]]:
    rng = random.Random(1)
    codes = sorted(last)
    out = []
    for _ in range(count):
        ods = rng.choice(codes)
        practice = int(ods[1:])
        after = rng.randrange(0, max(1, last[ods] - PAGE + 1))
        out.append(
            (
                f"/gp/v1/practices/{ods}/feed?after={after}&limit={PAGE}",
                {"Authorization": f"Bearer {_token(practice)}"},
            )
        )
    return out


def measure(url: str, store: Store, threads: int, seconds: float, work: Path) -> dict[str, Result]:
    started = time.monotonic()
    last = build(url, store)
    built = time.monotonic() - started
    print(
        f"  built {store.documents:,} documents over {store.practices:,} practices, "
        f"{sum(last.values()):,} events, in {built:.0f} s",
        flush=True,
    )
    server = Server(url, str(work))
    try:
        paths = poll_paths(last)
        # A 100-event page, checked once before timing it.
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", paths[0][0], headers=paths[0][1])
        page = json.loads(conn.getresponse().read())
        conn.close()
        assert len(page["events"]) == PAGE, page
        trivial: list[tuple[str, dict[str, str]]] = [("/healthz", {})]
        load(server.port, trivial, threads, 1.0)  # warm up
        load(server.port, paths, threads, 2.0)
        # Alternate short slices of each, so that whatever else the machine does weighs on
        # both alike rather than on whichever ran at the wrong moment.
        samples = {"healthz": Sample([]), "feed": Sample([])}
        for _ in range(SLICES):
            for name, chosen in (("healthz", trivial), ("feed", paths)):
                sample = load(server.port, chosen, threads, seconds / SLICES)
                samples[name].latencies += sample.latencies
                samples[name].elapsed += sample.elapsed
        return {name: sample.result() for name, sample in samples.items()}
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100,000 documents, 3 s per run")
    parser.add_argument("--database-url", default="", help="PostgreSQL to use (emptied first)")
    parser.add_argument("--threads", type=int, default=4, help="client connections")
    parser.add_argument("--seconds", type=float, default=0, help="seconds per measurement")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--instance", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.instance)
        return 0
    large = Store(100_000, 100) if args.quick else Store(1_000_000, 1_000)
    small = Store(10_000, 50)  # 200 events a practice: room for a 100-event page anywhere
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    work = Path(tempfile.mkdtemp(prefix="flagging-bench-feed-"))
    results: dict[Store, dict[str, Result]] = {}
    try:
        for store in (small, large):
            url = args.database_url or f"sqlite:///{work / f'store-{store.documents}.sqlite3'}"
            print(f"store of {store.documents:,} documents ({url.split(':')[0]})", flush=True)
            results[store] = measure(url, store, args.threads, seconds, work)
            if not args.database_url:
                os.remove(work / f"store-{store.documents}.sqlite3")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'store':>22}  {'endpoint':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for store, measured in results.items():
        for name, r in measured.items():
            label = "/healthz" if name == "healthz" else f"feed, {PAGE}-event page"
            print(
                f"{store.documents:>12,} documents  {label:<28} {r.rate:8.0f} "
                f"{r.p50_ms:8.2f} {r.p99_ms:8.2f}"
            )
    big, little = results[large], results[small]
    rate_ratio = big["feed"].rate / big["healthz"].rate
    growth = big["feed"].p50_ms / little["feed"].p50_ms
    checks = [
        (
            f"feed rate / healthz rate at {large.documents:,} documents",
            f"{rate_ratio:.2f}",
            f">= {TARGET_RATE_RATIO}",
            rate_ratio >= TARGET_RATE_RATIO,
        ),
        (
            f"feed p99 at {large.documents:,} documents",
            f"{big['feed'].p99_ms:.1f} ms",
            f"<= {TARGET_P99_MS:.0f} ms",
            big["feed"].p99_ms <= TARGET_P99_MS,
        ),
        (
            f"feed p50 at {large.documents:,} / at {small.documents:,}",
            f"{growth:.2f}",
            f"<= {TARGET_GROWTH}",
            growth <= TARGET_GROWTH,
        ),
    ]
    print()
    for name, value, target, ok in checks:
        print(f"{name:<48} {value:>9}  target {target:<9} {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

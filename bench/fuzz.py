"""The fuzz run: mutated corpus messages against a live service, over MLLP and over HTTP.

Run `.venv/bin/python bench/fuzz.py` (1,000,000 MLLP inputs on 4 persistent connections, then
50,000 HTTP inputs on 2 keep-alive connections; `--mllp N --http N` for other counts). It starts
`flagging serve` (web + MLLP + its SQLite writer process) on 127.0.0.1 with a fresh instance
folder, registers sender RXX and practice A81001, and drives it with tests/fuzzing.py: each
input is a message from ../shared/corpus/public or our samples with a few mutations, sent when
the answer to the previous one on that connection has arrived. It prints inputs, answers,
dropped connections, HTTP 500s, malformed ACKs, the ACK codes, the rows recorded, the log lines
the service wrote, and the resident memory (RSS) of the service process and of its writer
process: after start-up, after a warm-up (the first 2% of the MLLP inputs, in which the writer's
SQLite page cache fills up to its cache_size, 64 MiB) and at the end.
Exit status 0 when every input was answered, none dropped, no 500, no malformed ACK, every
input recorded and the service process's RSS (listener and web) grew less than 10% after the
warm-up; 1 otherwise; 2 if the bench itself failed. The writer's RSS follows its SQLite page
cache (up to 64 MiB of pages, emptied by the WAL checkpoint every 30 s): printed, not judged.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.service import (  # noqa: E402  (the project root must be on sys.path first)
    FLAGGING,
    ServiceProcess,
    prepare,
    service_env,
    stop_on_sigterm,
)
from tests import fuzzing, samples  # noqa: E402

BANNER = r"web on http://([^\s:]+):(\d+), MLLP on ([^\s:]+):(\d+)"
MAX_GROWTH = 0.10
SQLITE_CACHE_MIB = 64  # the writer connection's cache_size (flagging/storage/engine.py)


class Service:
    """`flagging serve` in a fresh instance folder; its stderr is counted, the tail kept."""

    def __init__(self, instance: Path) -> None:
        env = service_env(instance, FLAGGING_HTTP_PORT="0", FLAGGING_MLLP_PORT="0")
        self.token = _token(prepare(env, samples.SENDER, [samples.PRACTICE], "Fuzz"))
        self.database = instance / "flagging.sqlite3"
        self.log_lines = 0
        self.access_lines = 0
        self.tail: deque[str] = deque(maxlen=20)
        self.process = ServiceProcess(
            "flagging serve", [FLAGGING, "serve"], env, [BANNER], on_line=self._count
        ).wait_ready()
        match = self.process.match
        assert match is not None
        self.http = (match.group(1), int(match.group(2)))
        self.mllp = (match.group(3), int(match.group(4)))

    def _count(self, line: str) -> None:
        if re.search(BANNER, line):
            return
        if " werkzeug " in line:  # the web server's access log, a line a request
            self.access_lines += 1
            return
        self.log_lines += 1
        self.tail.append(line)

    def rss_mib(self) -> tuple[float, float]:
        """Resident memory of the service process and of its children (the writer)."""
        return self.process.rss_mib()

    def stop(self) -> None:
        self.process.stop(60)


def _token(output: str) -> str:
    for word in output.split():
        if len(word) >= 32 and re.fullmatch(r"[A-Za-z0-9_\-]+", word):
            return word
    raise RuntimeError(f"no token in the output of senders add: {output!r}")


def _recorded(database: Path) -> tuple[int, int]:
    """Rows in inbound_messages, and those answered by the last line of defence."""
    with sqlite3.connect(database) as conn:
        rows = int(conn.execute("SELECT count(*) FROM inbound_messages").fetchone()[0])
        unexpected = conn.execute(
            "SELECT count(*) FROM inbound_messages WHERE error_text LIKE ?",
            (fuzzing.UNEXPECTED + "%",),
        ).fetchone()[0]
    return rows, int(unexpected)


def _rss(label: str, rss: tuple[float, float]) -> str:
    return f"{label}: service {rss[0]:.1f} MiB, writer {rss[1]:.1f} MiB"


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="flagging-fuzz-"))
    service = Service(workdir / "instance")
    try:
        corpus = Path(args.corpus) if args.corpus else samples.CORPUS
        seeds = fuzzing.seeds(corpus)
        print(f"seeds: {len(seeds)} messages ({corpus})", flush=True)
        rss_start = service.rss_mib()
        print(_rss("RSS after start-up", rss_start), flush=True)
        inputs = fuzzing.Mutator(seeds, seed=args.seed)
        warm = max(1, args.mllp // 50) if args.mllp else 0
        started = time.monotonic()
        mllp = fuzzing.Tally()
        if warm:
            fuzzing.drive_mllp(service.mllp, inputs, warm, connections=args.connections, tally=mllp)
        rss_warm = service.rss_mib()
        print(_rss(f"RSS after {warm} inputs (warm-up)", rss_warm), flush=True)
        done = warm
        while done < args.mllp:
            step = min(args.report_every, args.mllp - done)
            fuzzing.drive_mllp(service.mllp, inputs, step, connections=args.connections, tally=mllp)
            done += step
            elapsed = time.monotonic() - started
            print(
                f"  MLLP {done}/{args.mllp} ({done / elapsed:.0f}/s): answered {mllp.answered},"
                f" dropped {mllp.dropped}, malformed {mllp.malformed}; "
                + _rss("RSS", service.rss_mib()),
                flush=True,
            )
        mllp_seconds = time.monotonic() - started
        started = time.monotonic()
        http = fuzzing.drive_http(
            service.http, service.token, inputs, args.http, connections=args.http_connections
        )
        http_seconds = time.monotonic() - started
        time.sleep(1.0)  # let the service settle (the writer's last batch, a log line)
        rss_end = service.rss_mib()
        recorded, unexpected = _recorded(service.database)
    finally:
        service.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    # The service process (listener and web) must end where it was after the warm-up. The
    # writer's RSS rises and falls with its SQLite page cache (bounded by cache_size, 64 MiB
    # of pages, and emptied by the checkpoint every 30 s, Database.keep_wal in
    # flagging/storage/engine.py):
    # its figures are printed, at every progress line too, not judged here
    # (tests/integration/test_memory.py checks that it gives back large messages).
    growth = (rss_end[0] - rss_warm[0]) / rss_warm[0]
    print()
    print(f"MLLP: {mllp.sent} inputs on {args.connections} connections in {mllp_seconds:.0f} s")
    print(
        f"  answered {mllp.answered}, dropped connections {mllp.dropped},"
        f" malformed ACKs {mllp.malformed}"
    )
    print(f"  ACK codes {dict(sorted(mllp.codes.items()))}")
    print(
        f"HTTP: {http.sent} inputs on {args.http_connections} connections in {http_seconds:.0f} s"
    )
    print(
        f"  answered {http.answered}, HTTP 500 {http.http_500}, dropped {http.dropped},"
        f" malformed ACKs {http.malformed}, other statuses {http.other_status}"
    )
    print(f"  ACK codes {dict(sorted(http.codes.items()))}")
    print(f"recorded: {recorded} rows in inbound_messages for {mllp.sent + http.sent} inputs")
    print(f"answered by the last line of defence (AR 207, something broke): {unexpected}")
    print(
        f"service log lines: {service.log_lines} (and {service.access_lines} lines of the web"
        " server's access log)"
    )
    print(_rss("RSS after start-up", rss_start))
    print(_rss("RSS after warm-up", rss_warm))
    print(_rss("RSS at the end", rss_end))
    print(
        f"RSS growth of the service process after warm-up: {growth:+.1%} (limit {MAX_GROWTH:.0%})"
    )
    print(
        f"writer process: {rss_end[1] - rss_start[1]:+.1f} MiB since start-up (its SQLite page"
        f" cache holds up to {SQLITE_CACHE_MIB} MiB of pages)"
    )
    for example in (mllp.examples + http.examples)[:5]:
        print(f"  went wrong: {example[:200]!r}")
    if service.tail:
        print("last service log lines:\n  " + "  ".join(service.tail))
    ok = mllp.clean and http.clean and recorded == mllp.sent + http.sent and growth < MAX_GROWTH
    print("result:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    # Stopped with SIGTERM, still stop the service and remove its folder (the `finally`s).
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mllp", type=int, default=1_000_000, help="MLLP inputs (1,000,000)")
    parser.add_argument("--http", type=int, default=50_000, help="HTTP inputs (50,000)")
    parser.add_argument("--connections", type=int, default=4, help="MLLP connections (4)")
    parser.add_argument("--http-connections", type=int, default=2, help="HTTP connections (2)")
    parser.add_argument("--seed", type=int, default=1, help="the mutations' random seed")
    parser.add_argument("--corpus", help="folder of .hl7 seeds (../shared/corpus/public)")
    parser.add_argument("--report-every", type=int, default=50_000, help="progress interval")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    try:
        return run(parser.parse_args())
    except RuntimeError as exc:
        print(f"fuzz: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

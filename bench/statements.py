"""CPU per statement on PostgreSQL: psycopg's cursor in pipeline mode against the ingest
writer's libpq path (flagging/storage/pgwire.py), same statements, same connection.

Run `.venv/bin/python bench/statements.py postgresql://postgres@127.0.0.1:5432/test`: T
transactions of K prepared SELECTs with two parameters each, read back, committed; it prints
the client's CPU and wall time per statement for each way, and their ratio (the two ways
alternate, so a busy machine disturbs both alike). Nothing is written to the database.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flagging.storage.pgwire import Wire

STATEMENT = "SELECT :a::int + 1, :b::text"


def cursor_way(connection: psycopg.Connection[Any], k: int, i: int) -> None:
    with connection.pipeline():
        cursors = [connection.cursor() for _ in range(k)]
        for cursor in cursors:
            cursor.execute("SELECT %(a)s::int + 1, %(b)s::text", {"a": i, "b": "x"})
        for cursor in cursors:
            cursor.fetchone()
    connection.commit()


def wire_way(connection: psycopg.Connection[Any], k: int, i: int) -> None:
    wire = Wire(connection)
    answers = [wire.execute(STATEMENT, {"a": i, "b": "x"}) for _ in range(k)]
    for answer in answers:
        answer.fetchone()
    wire.commit()


def measure(way: Any, connection: psycopg.Connection[Any], t: int, k: int) -> tuple[float, float]:
    """Microseconds of CPU and of wall time a statement."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(t):
        way(connection, k, i)
    return (time.process_time() - cpu) / t / k * 1e6, (time.perf_counter() - wall) / t / k * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--statements", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ways = {"psycopg cursor": cursor_way, "libpq (pgwire)": wire_way}
    # Each on a connection of its own: psycopg's preparing off on the Wire's, as the service
    # has it (flagging/storage/engine.py).
    with (
        psycopg.connect(args.url) as cursor_connection,
        psycopg.connect(args.url, prepare_threshold=None) as wire_connection,
    ):
        connections = {"psycopg cursor": cursor_connection, "libpq (pgwire)": wire_connection}
        for name, way in ways.items():  # warm-up: statements prepared, caches filled
            measure(way, connections[name], 200, args.statements)
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                figures[name].append(
                    measure(way, connections[name], args.transactions, args.statements)
                )
    print(f"{args.transactions} transactions x {args.statements} statements, {args.rounds} rounds")
    for name, runs in figures.items():
        cpu = sorted(run[0] for run in runs)[len(runs) // 2]
        wall = sorted(run[1] for run in runs)[len(runs) // 2]
        print(f"{name:16} {cpu:6.1f} us CPU, {wall:6.1f} us wall a statement (median)")
    cursor_cpu = sorted(run[0] for run in figures["psycopg cursor"])[args.rounds // 2]
    wire_cpu = sorted(run[0] for run in figures["libpq (pgwire)"])[args.rounds // 2]
    print(f"libpq / cursor CPU: {wire_cpu / cursor_cpu:.2f}")


if __name__ == "__main__":
    main()

"""CPU work per message on the in-process ingest path, to compare two trees on a busy machine.

Run `.venv/bin/python bench/cost.py [--messages N] [--threads T] [--kind mdm|oru]`: MDM^T02
messages (6.6 KB, bench/ingest.py's; `--kind oru`: its 200 KB ORU^R01 with a PDF) through the
HL7 handler and the in-process group commit (PostgreSQL's path; no sockets, no writer process),
T threads at once so batches form, on a fresh SQLite database.
It prints the process's CPU time per message, which a loaded machine disturbs far less than
the rates of bench/ingest.py, and the wall time. `--instructions` runs the same under
valgrind's callgrind twice (50 and N messages after the warm-up) and prints the instructions
per message: the same on a busy machine as on a quiet one, within about 1% (group-commit
batches differ between runs).
`--without audit` switches the audit entry off and `--without binding` the per-connection
sender binding, to measure what each costs. `PYTHONPATH=<other tree>` measures another commit.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import mdm_templates, oru_templates  # noqa: E402
from bench.service import prepare, service_env  # noqa: E402

# The product's modules from the tree on PYTHONPATH when there is one (the bench's own are
# imported above, from this tree, and import none of them).
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]

WARM_UP = 50


def _handler(env: dict[str, str], without: set[str]) -> Any:
    from config.settings import load_settings
    from flagging import audit
    from flagging.receiver import Receiver
    from flagging.storage.engine import Database
    from hl7.handler import MessageHandler

    if "audit" in without:
        audit.message_received = lambda *args, **kwargs: None  # type: ignore[assignment]
    settings = load_settings(env)
    return MessageHandler(Receiver(Database(settings), settings))


def measure(messages: int, threads: int, without: set[str], kind: str) -> tuple[float, float]:
    """CPU and wall seconds per message of `messages` messages sent by `threads` threads."""
    from flagging.bindings import Peer

    instance = Path(tempfile.mkdtemp(prefix="cost-"))
    try:
        env = service_env(instance)
        prepare(env, "RXX", ["A81001"], "bench")
        handler = _handler(env, without)
        extra = {} if "binding" in without else {"connection": Peer("127.0.0.1")}
        template = (mdm_templates if kind == "mdm" else oru_templates)(1)[0]
        raws = [template.render(f"C{i:08d}".encode()) for i in range(WARM_UP + messages)]
        for raw in raws[:WARM_UP]:
            assert b"MSA|AA" in handler.handle(raw, transport="mllp", **extra).ack
        acks: list[bytes] = []

        def send(part: list[bytes]) -> None:
            for raw in part:
                acks.append(handler.handle(raw, transport="mllp", **extra).ack)

        body = raws[WARM_UP:]
        workers = [threading.Thread(target=send, args=(body[i::threads],)) for i in range(threads)]
        started, wall = time.process_time(), time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        cpu, wall = time.process_time() - started, time.perf_counter() - wall
        handler.close()
        assert sum(b"MSA|AA" in ack for ack in acks) == messages, "a message was not AA"
        return cpu / messages, wall / messages
    finally:
        shutil.rmtree(instance, ignore_errors=True)


def instructions(messages: int, threads: int, without: list[str], kind: str) -> float:
    """Instructions per message under callgrind: (run of N - run of 50) / (N - 50)."""
    totals = []
    for count in (50, messages):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "callgrind.out"
            argv = [sys.executable, __file__, "--messages", str(count), "--threads", str(threads)]
            argv += ["--kind", kind]
            for name in without:
                argv += ["--without", name]
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
                check=True,
                capture_output=True,
            )
            found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
            assert found, "no totals in callgrind's output"
            totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / (messages - 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--without", action="append", choices=("audit", "binding"), default=[])
    parser.add_argument("--instructions", action="store_true", help="count under callgrind")
    parser.add_argument(
        "--kind", choices=("mdm", "oru"), default="mdm", help="6.6 KB MDM or 200 KB ORU"
    )
    args = parser.parse_args()
    label = f"{os.environ.get('PYTHONPATH') or ROOT} {args.kind}" + "".join(
        f" without {w}" for w in args.without
    )
    if args.instructions:
        count = min(args.messages, 450)  # callgrind runs ~50x slower
        per = instructions(count, args.threads, args.without, args.kind)
        print(f"{label}: {per / 1e6:.3f} M instructions per message")
    else:
        cpu, wall = measure(args.messages, args.threads, set(args.without), args.kind)
        print(f"{label}: {cpu * 1e3:.3f} ms CPU, {wall * 1e3:.3f} ms wall per message")


if __name__ == "__main__":
    main()

"""Worklist page benchmark: the same page with 10,000 and with 1,000,000 documents in the store.

Run `.venv/bin/python bench/worklist.py` (about 2-3 minutes; `--quick` stops at 100,000).
It builds a fresh SQLite store (migrated as in production), signs a clinician in through the
real login form and times the real Flask views through the test client: the median of many
requests for each page. Documents are bulk-inserted rows spread over several trusts, authors,
patients and statuses as a live store would be; the timed trust holds about a third of them.

The design says a worklist page must cost the same at ten million documents as at ten
thousand: the pages are keyset pages over the worklist indexes, so the ratio should stay near 1.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402  (the project root must come first)

from api import create_app  # noqa: E402
from config import load_settings  # noqa: E402
from flagging import organisations, users  # noqa: E402
from flagging.models import Document, DocumentVersion, InboundMessage, Sender  # noqa: E402
from flagging.storage.engine import Database  # noqa: E402
from flagging.storage.migrate import upgrade  # noqa: E402

TRUSTS = ("RXX", "RAA", "RBB", "RCC", "RDD")
TRUST_WEIGHTS = (34, 22, 18, 14, 12)  # the timed trust (RXX) is the largest
AUTHORS_PER_TRUST = 150
CLINICIAN_CODE = "C0000001"  # one of RXX's authors: "my documents"
PASSWORD = "benchmark password"  # noqa: S105  (a throwaway account in a temporary store)
BATCH = 20_000
NOW = datetime.now(UTC)
FAMILIES = (
    "SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "ROBINSON",
    "WRIGHT", "THOMPSON", "EVANS", "WALKER", "WHITE", "ROBERTS", "GREEN", "HALL", "WOOD",
    "JACKSON", "CLARKE", "PATEL", "KHAN", "LEWIS", "JAMES", "PHILLIPS", "MASON", "MITCHELL",
    "ROSE", "DAVIS", "COX", "MORRIS", "COOPER", "WARD", "OKAFOR", "NOWAK", "ADEBAYO",
)  # fmt: skip
GIVEN = ("ALEX", "SAM", "JO", "GRACE", "PIOTR", "MEGAN", "DANIEL", "AISHA", "OMAR", "RUTH")
TYPES = (("DS", "Discharge summary"), ("CL", "Clinic letter"), ("XR", "Radiology report"))


def _nhs_number(rng: random.Random) -> str:
    while True:
        nine = f"{rng.randrange(10**8, 10**9)}"
        remainder = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11
        check = 11 - remainder
        if check == 11:
            return nine + "0"
        if check != 10:
            return nine + str(check)


def _rows(
    rng: random.Random, start: int, count: int, senders: list[int], message_id: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Documents and their one version each: ~6% pending, ~9% withheld, the rest visible."""
    documents, versions = [], []
    for n in range(start, start + count):
        trust = rng.choices(range(len(senders)), TRUST_WEIGHTS)[0]
        sender_id = senders[trust]
        received = NOW - timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60))
        roll = rng.random()
        if roll < 0.06:
            visibility, due = "pending", NOW + timedelta(minutes=rng.randrange(-600, 24 * 60))
            updated = received
        else:
            visibility = "withheld" if roll < 0.15 else "visible"
            due, updated = None, received + timedelta(minutes=rng.randrange(1, 48 * 60))
        code, title = rng.choice(TYPES)
        author = f"C{trust}{rng.randrange(AUTHORS_PER_TRUST):06d}"
        if trust == 0 and rng.random() < 0.01:
            author = CLINICIAN_CODE
        number = f"{code}-{n:08d}"
        documents.append(
            {
                "id": n,
                "sender_id": sender_id,
                "document_number": number,
                "kind": "MDM",
                "status": "current",
                "nhs_number": _nhs_number(rng),
                "family_name": rng.choice(FAMILIES),
                "given_name": rng.choice(GIVEN),
                "practice_ods_code": "A81001",
                "practice_id": None,
                "latest_version": 1,
                "document_type": code,
                "title": title,
                "author_code": author,
                "specialty": "",
                "visibility": visibility,
                "review_due_at": due,
                "auto_release": visibility == "pending",
                "withhold_until": None,
                "revision": 1,
                "published": False,
                "created_at": received,
                "updated_at": updated,
            }
        )
        versions.append(
            {
                "document_id": n,
                "version": 1,
                "message_id": message_id,
                "sender_id": sender_id,
                "document_number": number,
                "event": "T02",
                "change": "original",
                "document_type": code,
                "title": title,
                "author_code": author,
                "author_name": f"DR {author}",
                "content_type": "text/plain",
                "content": b"Seen in clinic. Letter to follow.",
                "visibility": visibility,
                "created_at": received,
            }
        )
    return documents, versions


def _fill(db: Database, rng: random.Random, upto: int, senders: list[int], message_id: int) -> None:
    with db.engine.connect() as conn:
        have = conn.scalar(select(func.count()).select_from(Document)) or 0
    start = time.perf_counter()
    for first in range(have + 1, upto + 1, BATCH):
        count = min(BATCH, upto + 1 - first)
        documents, versions = _rows(rng, first, count, senders, message_id)
        with db.engine.begin() as conn:
            conn.execute(insert(Document), documents)
            conn.execute(insert(DocumentVersion), versions)
    print(f"  loaded {upto:,} documents ({time.perf_counter() - start:.0f} s)", flush=True)


def _setup(db: Database) -> tuple[list[int], int]:
    upgrade(db.engine)
    with db.transaction() as session:
        for code in TRUSTS:
            organisations.add_sender(session, code, f"Trust {code}")
        senders = [
            session.scalars(select(Sender.id).where(Sender.ods_code == c)).one() for c in TRUSTS
        ]
        users.add_user(
            session,
            username="bench.clinician",
            display_name="Dr Bench",
            role="clinician",
            password=PASSWORD,
            sender_id=senders[0],
            clinician_code=CLINICIAN_CODE,
        )
        message_id = session.execute(
            insert(InboundMessage)
            .values(received_at=NOW, transport="bench", size=0, content_hash="", outcome="accepted")
            .returning(InboundMessage.id)
        ).scalar_one()
    return senders, int(message_id)


PAGES = {
    "my documents (default)": "/worklist",
    "all of the trust": "/worklist?who=all",
    "withheld, all of the trust": "/worklist?who=all&status=withheld",
    "patient family name": "/worklist?who=all&patient=okafor",
}


def _time_pages(app: object, requests: int) -> dict[str, float]:
    client = app.test_client()  # type: ignore[attr-defined]
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)  # type: ignore[union-attr]
    signed_in = client.post(
        "/login", data={"username": "bench.clinician", "password": PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 302
    first = client.get("/worklist?who=all").get_data(as_text=True)
    following = re.search(r'href="([^"]+)" rel="next"', first)
    pages = dict(PAGES)
    if following:
        pages["all of the trust, page 2"] = following.group(1).replace("&amp;", "&")
    results = {}
    for name, url in pages.items():
        for _ in range(3):  # warm the caches
            client.get(url)
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code)
        results[name] = statistics.median(times) * 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 instead of 1,000,000")
    parser.add_argument("--requests", type=int, default=40, help="requests per page and size")
    args = parser.parse_args()
    sizes = (10_000, 100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-worklist-") as folder:
        settings = load_settings(
            {
                "FLAGGING_ENV": "test",
                "FLAGGING_INSTANCE_PATH": folder,
                "FLAGGING_SECRET_KEY": "bench",
            }
        )
        db = Database(settings)
        senders, message_id = _setup(db)
        app = create_app(settings, db=db)
        rng = random.Random(2026)
        figures: dict[int, dict[str, float]] = {}
        for size in sizes:
            print(f"store with {size:,} documents:", flush=True)
            _fill(db, rng, size, senders, message_id)
            figures[size] = _time_pages(app, args.requests)
            for name, ms in figures[size].items():
                print(f"  {name:<28} {ms:7.2f} ms (median of {args.requests})", flush=True)
        small, large = sizes
        print(f"\nworklist page time, {small:,} vs {large:,} documents:")
        for name in figures[small]:
            if name in figures[large]:
                ratio = figures[large][name] / figures[small][name]
                print(
                    f"  {name:<28} {figures[small][name]:7.2f} ms -> "
                    f"{figures[large][name]:7.2f} ms   x{ratio:.2f}"
                )
        db.dispose()


if __name__ == "__main__":
    main()

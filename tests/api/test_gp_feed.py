"""The feed over HTTP: pages, `after`/`limit`, problems for bad parameters, acknowledgements."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from api.schemas.feed import FeedPageSchema, feed_page_data
from flagging import gp_reads, gp_tokens
from flagging.models import Practice
from flagging.storage.engine import Database
from tests import samples
from tests.api.conftest import GPWorld
from tests.gp_helpers import feed_table

FEED = f"/gp/v1/practices/{samples.PRACTICE}/feed"
ACKS = f"/gp/v1/practices/{samples.PRACTICE}/acknowledgements"


def _auth(world: GPWorld) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token}"}


def test_feed_returns_the_practices_events_in_order_with_the_next_after(
    client: FlaskClient, gp_world: GPWorld, db: Database
) -> None:
    response = client.get(FEED, headers=_auth(gp_world))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    page = response.json
    assert page is not None
    stored = feed_table(db, samples.PRACTICE)
    assert [
        (e["seq"], e["type"], e["document_id"], e["version_id"], e["visibility"])
        for e in page["events"]
    ] == stored
    assert [e["type"] for e in page["events"]] == [
        "document.available",
        "document.superseded",
        "document.available",
        "visibility.changed",  # the decision, recorded on version 1 ...
        "visibility.changed",  # ... and on version 2, the latest, last
    ]
    assert [e["version"] for e in page["events"][-2:]] == [1, 2]
    assert page["next_after"] == 5
    assert page["more"] is False
    assert page["practice"] == samples.PRACTICE
    first = page["events"][0]
    assert first["version"] == 1
    assert first["document"] == f"/gp/v1/practices/{samples.PRACTICE}/documents/{gp_world.mine}"
    assert first["occurred_at"].endswith("+00:00")


def test_feed_pages_with_after_and_limit(client: FlaskClient, gp_world: GPWorld) -> None:
    seen: list[int] = []
    after = 0
    for _ in range(10):
        page = client.get(f"{FEED}?after={after}&limit=1", headers=_auth(gp_world)).json
        assert page is not None
        seen += [e["seq"] for e in page["events"]]
        after = page["next_after"]
        if not page["more"]:
            break
    assert seen == [1, 2, 3, 4, 5]
    empty = client.get(f"{FEED}?after=5", headers=_auth(gp_world)).json
    assert empty == {"practice": samples.PRACTICE, "events": [], "next_after": 5, "more": False}
    beyond = client.get(f"{FEED}?after=100", headers=_auth(gp_world)).json
    assert beyond is not None
    assert beyond["next_after"] == 100


@pytest.mark.parametrize(
    "query", ["limit=501", "limit=0", "limit=-3", "after=-1", "after=abc", "limit=1.5"]
)
def test_bad_parameters_are_400_problem_json(
    client: FlaskClient, gp_world: GPWorld, query: str
) -> None:
    response = client.get(f"{FEED}?{query}", headers=_auth(gp_world))

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.json
    assert problem is not None
    assert problem["status"] == 400
    assert problem["title"] == "Bad Request"
    assert query.split("=")[0] in problem["errors"]


def test_a_page_holds_at_most_500_events(client: FlaskClient, gp_world: GPWorld) -> None:
    response = client.get(f"{FEED}?limit=500", headers=_auth(gp_world))
    assert response.status_code == 200


def test_acknowledgement_is_recorded_for_the_operators(
    client: FlaskClient, gp_world: GPWorld, db: Database
) -> None:
    response = client.post(ACKS, json={"up_to": 3}, headers=_auth(gp_world))

    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert (body["acknowledged_seq"], body["last_event"]) == (3, 5)
    with db.reading() as session:
        practice = session.scalars(
            select(Practice).where(Practice.ods_code == samples.PRACTICE)
        ).one()
    assert practice.acknowledged_seq == 3
    assert practice.acknowledged_at is not None


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"up_to": 99}', "application/json", 409),
        (b'{"up_to": -1}', "application/json", 400),
        (b'{"up_to": "3"}', "application/json", 400),
        (b'{"up_to": 3, "extra": 1}', "application/json", 400),
        (b"[3]", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b"up_to=3", "application/x-www-form-urlencoded", 415),
    ],
)
def test_bad_acknowledgements_are_problems(
    client: FlaskClient, gp_world: GPWorld, body: bytes, content_type: str, status: int
) -> None:
    response = client.post(
        ACKS, data=body, headers={**_auth(gp_world), "Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_the_feeds_fast_serialisation_equals_its_schemas_dump(
    client: FlaskClient, gp_world: GPWorld, db: Database
) -> None:
    with db.reading() as session:
        access = gp_tokens.authorize(session, gp_world.token, samples.PRACTICE)
        page = gp_reads.practice_feed(session, access, 0, 500)
    prefix = f"/gp/v1/practices/{samples.PRACTICE}/documents/"
    dumped = FeedPageSchema().dump(
        {
            "practice": samples.PRACTICE,
            "events": [
                {**e._asdict(), "document": f"{prefix}{e.document_id}"} for e in page.events
            ],
            "next_after": page.next_after,
            "more": page.more,
        }
    )
    built = feed_page_data(samples.PRACTICE, page.events, page.next_after, page.more, prefix)
    assert built == dumped
    assert FeedPageSchema().validate(built) == {}
    assert client.get(FEED, headers=_auth(gp_world)).json == built

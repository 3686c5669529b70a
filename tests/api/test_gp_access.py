"""Who may read what: 401 without a valid token, 404 (never 403) outside the token's scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flagging import gp_tokens
from flagging.storage.engine import Database
from tests import samples
from tests.api.conftest import GPWorld
from tests.gp_helpers import OTHER_PRACTICE, token_for

DOCUMENT_ENDPOINTS = ["", "/hl7v2", "/fhir", "/content"]


def _get(client: FlaskClient, path: str, token: str | None) -> TestResponse:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get(path, headers=headers)


def _all_requests(
    client: FlaskClient, practice: str, document: int, token: str | None
) -> list[tuple[str, TestResponse]]:
    """Every GP endpoint, for one practice in the path and one document."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    base = f"/gp/v1/practices/{practice}"
    answers = [(f"{base}/feed", client.get(f"{base}/feed", headers=headers))]
    for suffix in DOCUMENT_ENDPOINTS:
        path = f"{base}/documents/{document}{suffix}"
        answers.append((path, client.get(path, headers=headers)))
    path = f"{base}/acknowledgements"
    answers.append((path, client.post(path, json={"up_to": 0}, headers=headers)))
    return answers


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
def test_every_endpoint_answers_401_without_a_valid_token(
    client: FlaskClient, gp_world: GPWorld, token: str | None
) -> None:
    for path, response in _all_requests(client, samples.PRACTICE, gp_world.mine, token):
        assert response.status_code == 401, path
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="gp"')


def test_a_revoked_token_is_refused_from_the_next_request_on(
    client: FlaskClient, gp_world: GPWorld, db: Database
) -> None:
    feed = f"/gp/v1/practices/{samples.PRACTICE}/feed"
    assert _get(client, feed, gp_world.token).status_code == 200
    with db.transaction() as session:
        token_id = gp_tokens.list_tokens(session)[0].id
        gp_tokens.revoke_token(session, token_id, now=datetime.now(UTC))
    for path, response in _all_requests(client, samples.PRACTICE, gp_world.mine, gp_world.token):
        assert response.status_code == 401, path
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_another_practices_document_answers_404_on_every_document_endpoint(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    base = f"/gp/v1/practices/{samples.PRACTICE}/documents"
    for suffix in DOCUMENT_ENDPOINTS:
        theirs = _get(client, f"{base}/{gp_world.theirs}{suffix}", gp_world.token)
        missing = _get(client, f"{base}/999999{suffix}", gp_world.token)
        assert theirs.status_code == 404, suffix
        assert theirs.mimetype == "application/problem+json"
        # Exactly what a document that does not exist answers: nothing tells them apart.
        assert theirs.json is not None
        assert missing.json is not None
        assert theirs.json["detail"].replace(str(gp_world.theirs), "N") == missing.json[
            "detail"
        ].replace("999999", "N")
        # The other practice's own token reads it.
        own = _get(
            client,
            f"/gp/v1/practices/{OTHER_PRACTICE}/documents/{gp_world.theirs}{suffix}",
            gp_world.other_token,
        )
        assert own.status_code == 200, suffix


def test_a_practice_outside_the_tokens_scope_answers_404_on_every_endpoint(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    for path, response in _all_requests(client, OTHER_PRACTICE, gp_world.theirs, gp_world.token):
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"
    # The same as a practice that is not registered at all.
    for path, response in _all_requests(client, "Z99999", gp_world.theirs, gp_world.token):
        assert response.status_code == 404, path


def test_a_token_for_both_practices_reads_each_document_only_under_its_own_practice(
    client: FlaskClient, gp_world: GPWorld, db: Database
) -> None:
    both = token_for(db, samples.PRACTICE, OTHER_PRACTICE)
    for suffix in DOCUMENT_ENDPOINTS:
        wrong = f"/gp/v1/practices/{OTHER_PRACTICE}/documents/{gp_world.mine}{suffix}"
        right = f"/gp/v1/practices/{samples.PRACTICE}/documents/{gp_world.mine}{suffix}"
        assert _get(client, wrong, both).status_code == 404, suffix
        assert _get(client, right, both).status_code == 200, suffix


def test_responses_are_not_stored_by_caches(client: FlaskClient, gp_world: GPWorld) -> None:
    for path, response in _all_requests(client, samples.PRACTICE, gp_world.mine, gp_world.token):
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store"

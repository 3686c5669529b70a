"""Sender tokens rotate: several active at once, listed with their last use, revoked at once."""

from __future__ import annotations

import json
import re

import pytest
from flask.testing import FlaskClient

from cli.main import main
from config import Settings
from flagging.storage.engine import Database
from tests import samples

URL = "/hl7/v2/messages"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


def _token(out: str) -> str:
    found = re.search(r"HTTP bearer token \(shown once, keep it safe\): (\S+)", out)
    assert found, out
    return found.group(1)


def _ack(client: FlaskClient, token: str, control_id: str) -> int:
    response = client.post(
        URL,
        data=samples.mdm(control_id=control_id, number=f"DOC-{control_id}"),
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/hl7-v2",
    )
    if response.status_code == 200:
        assert f"MSA|AA|{control_id}".encode() in response.data
    return response.status_code


def test_a_second_sender_token_works_beside_the_first_until_one_is_revoked(
    capsys: pytest.CaptureFixture[str], client: FlaskClient, sender_token: str
) -> None:
    assert main(["senders", "token", samples.SENDER, "--name", "new engine"]) == 0
    second = _token(capsys.readouterr().out)
    assert second != sender_token

    # Both tokens send while the trust changes over.
    assert _ack(client, sender_token, "OLD1") == 200
    assert _ack(client, second, "NEW1") == 200

    assert main(["senders", "tokens", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["sender"], t["name"], t["revoked_at"]) for t in listed] == [
        (samples.SENDER, "first token", None),
        (samples.SENDER, "new engine", None),
    ]
    assert all(t["last_used_at"] is not None for t in listed)
    assert sender_token not in json.dumps(listed)
    assert second not in json.dumps(listed)

    first_id = listed[0]["id"]
    assert main(["senders", "revoke-token", str(first_id)]) == 0
    assert f"sender token {first_id} revoked" in capsys.readouterr().out

    # The revoked token is refused from its very next request; the other carries on.
    assert _ack(client, sender_token, "OLD2") == 401
    assert _ack(client, second, "NEW2") == 200
    assert main(["senders", "tokens", "--json"]) == 0
    revoked = {t["id"]: t["revoked_at"] for t in json.loads(capsys.readouterr().out)}
    assert revoked[first_id] is not None


def test_token_for_an_unregistered_sender_or_unknown_id_fails_with_a_reason(
    capsys: pytest.CaptureFixture[str], sender_token: str
) -> None:
    assert main(["senders", "token", "RZZ"]) == 1
    assert "no sender RZZ" in capsys.readouterr().err
    assert main(["senders", "revoke-token", "999999"]) == 1
    assert "no sender token 999999" in capsys.readouterr().err

"""`flagging users ...` and `flagging rules ...`, run in-process against the test database."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest

from cli.main import main
from config import Settings
from flagging import users
from flagging.storage.engine import Database


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    return data


def _can_sign_in(db: Database, username: str, password: str) -> bool:
    with db.transaction() as session:
        return users.authenticate(session, username, password, datetime.now(UTC)).user is not None


def test_users_are_added_with_a_password_shown_once_listed_and_reset(
    capsys: pytest.CaptureFixture[str], db: Database
) -> None:
    assert main(["senders", "add", "RXX", "--name", "Test Trust"]) == 0
    capsys.readouterr()
    argv = ["users", "add", "sam.grey", "--name", "Dr Sam Grey", "--sender", "rxx"]
    assert main([*argv, "--code", "C1234567"]) == 0
    out = capsys.readouterr().out
    password = re.search(r"password \(shown once.*\): (\S+)", out)
    assert password
    assert _can_sign_in(db, "sam.grey", password.group(1))

    listed = _json(capsys, "users", "list")
    assert [(u["username"], u["role"], u["sender"], u["clinician_code"]) for u in listed] == [
        ("sam.grey", "clinician", "RXX", "C1234567")
    ]
    assert "password" not in json.dumps(listed)

    assert main(["users", "reset-password", "sam.grey"]) == 0
    new = re.search(r"new password \(shown once.*\): (\S+)", capsys.readouterr().out)
    assert new
    assert _can_sign_in(db, "sam.grey", new.group(1))
    assert not _can_sign_in(db, "sam.grey", password.group(1))


def test_a_password_can_come_from_standard_input(
    capsys: pytest.CaptureFixture[str], db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a password from a vault\n"))
    assert main(["users", "add", "ada", "--role", "admin", "--password-stdin"]) == 0
    assert "password" not in capsys.readouterr().out.split("\n", 1)[1]
    assert _can_sign_in(db, "ada", "a password from a vault")


def test_user_commands_fail_with_a_one_line_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "add", "sam", "--sender", "RNONE"]) == 1
    assert capsys.readouterr().err.strip() == "flagging: no sender RNONE is registered"
    assert main(["users", "add", "sam"]) == 1  # a clinician needs a trust
    err = capsys.readouterr().err.strip()
    assert err.startswith("flagging: ")
    assert "\n" not in err
    assert main(["users", "reset-password", "nobody"]) == 1
    assert "no user nobody" in capsys.readouterr().err


def test_rules_are_added_listed_disabled_and_the_starter_set_loaded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "add", "--kind", "phrase", "--pattern", "court order"]) == 0
    [rule] = _json(capsys, "rules", "list")
    assert (rule["kind"], rule["pattern"], rule["active"]) == ("phrase", "court order", True)
    assert main(["rules", "disable", str(rule["id"])]) == 0
    assert _json(capsys, "rules", "list")[0]["active"] is False
    assert main(["rules", "starter"]) == 0
    assert "starter rules added" in capsys.readouterr().out
    assert len(_json(capsys, "rules", "list")) >= 25
    assert main(["rules", "add", "--kind", "regex", "--pattern", "(open"]) == 1
    assert "does not compile" in capsys.readouterr().err


def test_demo_creates_a_clinician_and_an_administrator_who_can_sign_in(
    capsys: pytest.CaptureFixture[str], db: Database
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    found = dict(re.findall(r"web sign-in (\S+) \(\w+\), password: (\S+)", out))
    assert set(found) == {"demo.clinician", "demo.admin"}
    assert _can_sign_in(db, "demo.clinician", found["demo.clinician"])
    assert "starter screening rules" in out

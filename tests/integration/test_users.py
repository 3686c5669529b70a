"""Accounts: who may be added, and the login check with its lock after repeated failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from flagging import organisations, passwords, users
from flagging.errors import Conflict, InvalidInput
from flagging.models import Sender, User
from flagging.storage.engine import Database

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def sender_id(db: Database) -> int:
    with db.transaction() as session:
        organisations.add_sender(session, "RXX", "Test Trust")
        return session.scalars(select(Sender.id)).one()


@pytest.fixture
def clinician(db: Database, sender_id: int) -> int:
    with db.transaction() as session:
        return users.add_user(
            session,
            username=" Sam.Grey ",
            display_name="Dr Sam Grey",
            role="clinician",
            password=PASSWORD,
            sender_id=sender_id,
            clinician_code="C1234567",
        ).id


def _user(db: Database, user_id: int) -> User:
    with db.transaction() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def _login(db: Database, password: str, now: datetime = NOW, username: str = "sam.grey"):
    with db.transaction() as session:
        return users.authenticate(session, username, password, now)


def test_password_is_stored_as_an_argon2id_hash_and_the_username_normalised(
    db: Database, clinician: int
) -> None:
    user = _user(db, clinician)
    assert user.username == "sam.grey"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role": "clinician", "sender_id": None}, "belongs to a registered sender"),
        ({"role": "admin", "clinician_code": "C1"}, "administrator belongs to no trust"),
        ({"role": "nurse"}, "role must be one of"),
        ({"username": "x"}, "not a usable username"),
        ({"password": "short"}, "at least 12 characters"),
    ],
)
def test_unusable_accounts_are_refused(
    db: Database, sender_id: int, options: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "username": "new.user",
        "display_name": "New",
        "role": "clinician",
        "password": PASSWORD,
        "sender_id": sender_id,
    }
    values.update(options)
    with db.transaction() as session, pytest.raises(InvalidInput, match=message):
        users.add_user(session, **values)  # type: ignore[arg-type]


def test_a_username_is_taken_only_once(db: Database, clinician: int) -> None:
    with db.transaction() as session, pytest.raises(Conflict, match="already exists"):
        users.add_user(
            session, username="SAM.GREY", display_name="x", role="admin", password=PASSWORD
        )


def test_right_password_signs_in_and_clears_earlier_failures(db: Database, clinician: int) -> None:
    assert _login(db, "wrong").user is None
    result = _login(db, PASSWORD)
    assert result.user is not None
    assert result.user.id == clinician
    assert _user(db, clinician).failed_logins == 0


def test_unknown_and_inactive_users_are_refused_alike(db: Database, clinician: int) -> None:
    unknown = _login(db, PASSWORD, username="nobody")
    with db.transaction() as session:
        users.set_user_active(session, clinician, False)
    inactive = _login(db, PASSWORD)
    assert unknown.user is None
    assert inactive.user is None
    assert unknown.refusal == inactive.refusal == users.REFUSED


def test_five_failures_lock_the_account_for_fifteen_minutes(db: Database, clinician: int) -> None:
    for attempt in range(users.MAX_FAILED_LOGINS):
        result = _login(db, "wrong", NOW + timedelta(seconds=attempt))
        assert result.user is None
    assert _user(db, clinician).locked_until == NOW + timedelta(seconds=4) + users.LOCKOUT

    locked = _login(db, PASSWORD, NOW + timedelta(minutes=10))
    assert locked.user is None
    assert "locked" in locked.refusal
    assert _login(db, PASSWORD, NOW + timedelta(minutes=16)).user is not None


def test_resetting_a_password_unlocks_the_account(db: Database, clinician: int) -> None:
    for _ in range(users.MAX_FAILED_LOGINS):
        _login(db, "wrong")
    with db.transaction() as session:
        users.reset_password(session, clinician, "another long password")
    assert _login(db, "another long password").user is not None
    assert _login(db, PASSWORD).user is None


def test_a_hash_made_with_older_parameters_is_upgraded_at_the_next_sign_in(
    db: Database, clinician: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", stronger)
    assert _login(db, PASSWORD).user is not None
    assert "t=2" in _user(db, clinician).password_hash

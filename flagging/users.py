"""People who sign in: adding them, resetting passwords, and checking a login (rate-limited).

A run of failed logins locks the account for a while: the count and the lock live on the user
row, so the limit holds across every web process. Failures are also counted per network address
(a row per address), so one address cannot try a password against every account in turn. The
username is checked in constant-ish time: an unknown name, a locked account and a blocked
address each cost a password verification too, as a wrong password does.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flagging import passwords
from flagging.errors import Conflict, InvalidInput, NotFound
from flagging.models import Role, Sender, SignInAddress, User

MIN_PASSWORD_LENGTH = 12
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
# Per address: generous, since a hospital's clinicians may all sign in from one NAT address.
MAX_ADDRESS_FAILURES = 30
ADDRESS_WINDOW = timedelta(minutes=15)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,99}$")


def new_password() -> str:
    """A random password for a new account or a reset, shown once to the administrator."""
    return secrets.token_urlsafe(15)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def normalise_username(username: str) -> str:
    return username.strip().lower()


def add_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    role: str,
    password: str,
    sender_id: int | None = None,
    clinician_code: str = "",
) -> User:
    """Add an account. A clinician belongs to one sender (trust) and has the code that the
    trust's messages carry in TXA-9 / OBR-32; an administrator belongs to no trust."""
    username = normalise_username(username)
    if not USERNAME.match(username):
        raise InvalidInput(
            f"{username!r} is not a usable username: 3-100 characters, letters, digits and . _ @ -"
        )
    try:
        role = Role(role).value
    except ValueError:
        raise InvalidInput(
            f"role must be one of {', '.join(r.value for r in Role)}, not {role!r}"
        ) from None
    clinician_code = clinician_code.strip()
    if role == Role.CLINICIAN:
        if sender_id is None or session.get(Sender, sender_id) is None:
            raise InvalidInput("a clinician belongs to a registered sender (their trust)")
    elif sender_id is not None or clinician_code:
        raise InvalidInput("an administrator belongs to no trust and has no clinician code")
    _check_password(password)
    user = User(
        username=username,
        display_name=display_name.strip() or username,
        password_hash=passwords.hash_password(password),
        role=role,
        sender_id=sender_id,
        clinician_code=clinician_code,
        active=True,
        failed_logins=0,
        created_at=datetime.now(UTC),
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"user {username} already exists") from None
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(
        select(User).where(User.username == normalise_username(username))
    ).first()


def user_by_username(session: Session, username: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"no user {normalise_username(username)}")
    return user


def reset_password(session: Session, user_id: int, password: str) -> User:
    """Set a new password; it also unlocks the account and ends its signed-in sessions."""
    user = get_user(session, user_id)
    _check_password(password)
    user.password_hash = passwords.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    end_sessions(session, user.id)
    return user


def set_user_active(session: Session, user_id: int, active: bool) -> User:
    """Make an account active or inactive; deactivating it ends its signed-in sessions."""
    user = get_user(session, user_id)
    user.active = active
    session.flush()
    if not active:
        end_sessions(session, user.id)
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of the user, on every browser and every copy of its cookie."""
    # One UPDATE with the increment in SQL: two sign-outs at once both count.
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def credential_stamp(user: User) -> str:
    """Changes whenever the password does: a session carrying an old stamp is signed out."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    refusal: str = ""  # why not, in words fit for the person at the login page


REFUSED = "The username or password is not right."


ADDRESS_BLOCKED = (
    "Too many failed sign-in attempts from your network: try again in 15 minutes, "
    "or ask an administrator for help."
)


def authenticate(
    session: Session, username: str, password: str, now: datetime, *, address: str = ""
) -> LoginResult:
    """Check a login from network `address`. Failures are counted on the account and on the
    address, so the caller must commit even when the login is refused; five in a row lock
    the account for fifteen minutes, thirty from one address block it for as long."""
    if address and _address_blocked(session, address, now):
        passwords.burn_time(password)
        return LoginResult(None, ADDRESS_BLOCKED)
    user = find_user(session, username) if username.strip() else None
    if user is None or not user.active:
        passwords.burn_time(password)
        _address_failed(session, address, now)
        return LoginResult(None, REFUSED)
    if user.locked_until is not None and user.locked_until > now:
        # As slow as a wrong password, so timing does not tell a locked account apart.
        passwords.burn_time(password)
        _address_failed(session, address, now)
        return LoginResult(None, _locked_message(user.locked_until, now))
    if not passwords.verify_password(user.password_hash, password):
        _address_failed(session, address, now)
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins = 0
            user.locked_until = now + LOCKOUT
            session.flush()
            return LoginResult(None, _locked_message(user.locked_until, now))
        session.flush()
        return LoginResult(None, REFUSED)
    user.failed_logins = 0
    user.locked_until = None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    session.flush()
    return LoginResult(user)


def _address_blocked(session: Session, address: str, now: datetime) -> bool:
    row = session.get(SignInAddress, address[:64])
    return row is not None and row.blocked_until is not None and row.blocked_until > now


def _address_failed(session: Session, address: str, now: datetime) -> None:
    """Count a failure from `address`; past the limit within the window, block it."""
    if not address:
        return
    address = address[:64]
    row = session.get(SignInAddress, address)
    if row is None:
        row = SignInAddress(address=address, failures=0, window_started_at=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # another request from the address added it first
            row = session.get(SignInAddress, address, populate_existing=True)
            if row is None:
                return
    if now - row.window_started_at >= ADDRESS_WINDOW:
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    if row.failures >= MAX_ADDRESS_FAILURES:
        row.failures, row.window_started_at = 0, now
        row.blocked_until = now + ADDRESS_WINDOW
    session.flush()


def _locked_message(locked_until: datetime, now: datetime) -> str:
    minutes = max(1, int((locked_until - now).total_seconds() + 59) // 60)
    return (
        "Too many failed sign-in attempts: this account is locked. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, "
        "or ask an administrator to reset your password."
    )

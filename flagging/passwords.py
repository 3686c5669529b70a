"""Password hashing with argon2id (RFC 9106): slow on purpose, salted, parameters in the hash."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's low-memory profile (t=3, m=64 MiB, p=4); tests swap
# in cheaper parameters through this one object.
_hasher = PasswordHasher(type=Type.ID)
_dummy_lock = threading.Lock()
_dummy: dict[int, str] = {}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches; never raises for a wrong password or a bad hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's (rehash at next login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def burn_time(password: str) -> None:
    """Spend what a real verification costs, so an unknown username is not told by timing."""
    with _dummy_lock:
        dummy = _dummy.get(id(_hasher))
        if dummy is None:
            dummy = _dummy[id(_hasher)] = _hasher.hash("not a real password")
    verify_password(dummy, password)

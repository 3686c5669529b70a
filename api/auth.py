"""Who is signed in, and the guards of the server-rendered pages: sign-in, roles and CSRF.

Sessions are Flask's signed cookies (HttpOnly, SameSite=Lax, Secure in production). A signed
cookie cannot be taken back, so the server decides whether it still counts: besides the user's
id a session carries the user's session generation, checked on every request. Signing out,
a password reset and deactivation raise the generation, which ends every copy of every
session of that user (a copied cookie replayed after sign-out is refused). The stamp derived
from the password hash stays as a second check.

CSRF is a synchronizer token: a random value kept in the session and repeated in a hidden
field of every form; a POST whose field does not match is refused before the view runs. The
pages check it themselves rather than app-wide, because the JSON APIs next to them (ingest,
GP feed, hospital decisions) authenticate with bearer tokens, not cookies, and need none.

Optional single sign-on: when FLAGGING_TRUSTED_USER_HEADER is set, a request carrying that
header is signed in as the user it names (the reverse proxy in front has authenticated them).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from flask import abort, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from api.context import database, settings
from api.context import db_session as request_session
from flagging.errors import NotFound
from flagging.models import Role, User
from flagging.users import credential_stamp, end_sessions, find_user, get_user

SESSION_USER = "user_id"
SESSION_STAMP = "stamp"
SESSION_GENERATION = "generation"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_NEXT_LENGTH = 2000
MAX_DECODINGS = 4


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user, as the pages need it (not bound to any database session)."""

    id: int
    username: str
    display_name: str
    role: str
    sender_id: int | None
    clinician_code: str
    single_sign_on: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @classmethod
    def of(cls, user: User, *, single_sign_on: bool = False) -> SignedIn:
        return cls(
            user.id,
            user.username,
            user.display_name,
            user.role,
            user.sender_id,
            user.clinician_code,
            single_sign_on,
        )


def sign_in(user: User) -> None:
    """Start a fresh session for `user`: everything from before is dropped and the CSRF token
    is new, so a session planted before sign-in is worth nothing after it."""
    session.clear()
    session.permanent = True
    session[SESSION_USER] = user.id
    session[SESSION_STAMP] = credential_stamp(user)
    session[SESSION_GENERATION] = user.session_generation
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    # The rest of this request is theirs: not reloaded from the database, where a rehashed
    # password (and so the stamp) is not committed until the request's transaction is.
    g.signed_in = SignedIn.of(user)


def sign_out() -> None:
    """End this user's sessions on the server (every copy of the cookie), then this one."""
    user = signed_in()
    if user is not None and not user.single_sign_on:
        end_sessions(request_session(), user.id)  # committed with the request
    session.clear()
    g.pop("signed_in", None)


def _load() -> SignedIn | None:
    header = settings().trusted_user_header
    if header and request.headers.get(header, "").strip():
        username = request.headers[header].strip()
        with database().reading() as db_session:
            user = find_user(db_session, username)
            if user is None or not user.active:
                g.sso_refused = username
                return None
            return SignedIn.of(user, single_sign_on=True)
    user_id = session.get(SESSION_USER)
    if not isinstance(user_id, int):
        return None
    with database().reading() as db_session:
        try:
            user = get_user(db_session, user_id)
        except NotFound:
            user = None
        if (
            user is None
            or not user.active
            or session.get(SESSION_GENERATION) != user.session_generation
            or not hmac.compare_digest(str(session.get(SESSION_STAMP, "")), credential_stamp(user))
        ):
            session.pop(SESSION_USER, None)
            return None
        return SignedIn.of(user)


def signed_in() -> SignedIn | None:
    """The user of this request, or None (loaded once per request)."""
    if "signed_in" not in g:
        g.signed_in = _load()
    user: SignedIn | None = g.signed_in
    return user


def current_user() -> SignedIn:
    """The signed-in user of a view behind `require`; never None there."""
    user = signed_in()
    if user is None:
        abort(401)
    return user


def csrf_token() -> str:
    """This session's CSRF token, for the hidden field of every form."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def check_csrf() -> None:
    """Refuse an unsafe request whose form does not carry this session's token, or that a
    browser says came from another site."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(SESSION_CSRF)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(expected, sent):
        abort(
            400,
            "The form had expired or did not come from this service. Go back, reload "
            "the page and try again.",
        )
    # "null" is what a sandboxed frame or a data: page sends: as foreign as any other site.
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        abort(400, "The form was sent from another site.")


def _local_path(target: str) -> bool:
    """A path on this site: starts with one '/', has no scheme, host or control character, and
    no backslash or space before its query (browsers drop tabs and newlines and read '\\' as
    '/', so '/\\tevil.example' would be another site)."""
    if not target.startswith("/") or target.startswith("//"):
        return False
    if not target.isprintable():
        return False
    # The query may hold spaces and backslashes (a worklist filter); the path may not.
    path = target.split("?", 1)[0].split("#", 1)[0]
    if "\\" in path or " " in path:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None) -> str | None:
    """A local path to return to after signing in, or None (never another site). Encoded
    variants ('/%2F%2Fevil', '/%5Cevil') are checked decoded too, however often encoded."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return None
    seen = target
    for _ in range(MAX_DECODINGS):
        if not _local_path(seen):
            return None
        decoded = unquote(seen)
        if decoded == seen:
            return target
        seen = decoded
    return None  # still changing after several decodings: not a path a page of ours made


def require(role: Role) -> Callable[[], Response | None]:
    """A blueprint `before_request` hook: signed in with `role`, and CSRF-checked."""

    def guard() -> Response | None:
        user = signed_in()
        if user is None:
            if "sso_refused" in g:
                abort(
                    403,
                    f"Your single sign-on account {g.sso_refused} has no access to this "
                    "service. Ask an administrator to add it.",
                )
            if request.method in UNSAFE_METHODS:
                abort(401, "Your sign-in has ended. Sign in again and repeat what you were doing.")
            return redirect(url_for("login.login", next=request.full_path.rstrip("?")))
        if user.role != role:
            abort(403, "Your account does not give access to this page.")
        check_csrf()
        return None

    return guard

"""Every door of the web app, tried by every identity.

DOORS classifies each (URL rule, method) of `app.url_map`: who may pass it, and how to knock on
it for the resources of trust/practice A, of B, and (where a URL names two things) for a mix
of both, which nobody may read. The walk fails when the app has a route DOORS does not
classify, so a new route cannot be added without saying who may use it.

Identities: anonymous, a clinician of trust A and of trust B, an administrator, a GP token of
practice A and of B, a sender token of trust A and of B, and revoked tokens. An identity that
may not pass is answered 302-to-sign-in, 400, 401, 403 or 404 (as the code answers: another
trust's or practice's resource is 404, as if it did not exist); one that may, passes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from flagging import gp_tokens, organisations, screening
from flagging.models import Decision, InboundMessage, Practice
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples
from tests.gp_helpers import OTHER_PRACTICE, add_practice, document_id, send

TRUST_B = "RB2"
CLINICIAN_B = "robin.blue"
NOBODY, PUBLIC, SIGNED_IN, CLINICIAN, ADMIN, GP, SENDER = (
    "nobody",  # closed unless the operator opens it (a setting), as in these tests
    "public",
    "signed-in",
    "clinician",
    "admin",
    "gp",
    "sender",
)
# Which owner of a resource each URL is built for: A, B, or a mix nobody may read.
A, B, MIXED = "A", "B", "mixed"


@dataclass(frozen=True)
class World:
    sender: dict[str, str]  # owner -> ODS code of the trust
    practice: dict[str, str]  # owner -> ODS code of the practice
    document: dict[str, int]  # owner -> id of a document of that trust and practice
    number: dict[str, str]  # owner -> its document number
    sender_id: int
    message_id: int
    rule_id: int
    window_id: int
    user_id: int  # an account the administrator may change
    gp_token: dict[str, str]
    sender_token: dict[str, str]
    revoked_gp_token: str
    revoked_sender_token: str


@dataclass(frozen=True)
class Knock:
    """One request: the path and what goes with it (a form, JSON or an HL7 body)."""

    path: str
    form: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    hl7: bytes | None = None


@dataclass(frozen=True)
class Door:
    """Who may pass, how to knock for each owner, and what passing looks like."""

    audience: str
    knock: Callable[[World, str], Knock]
    owners: tuple[str, ...] = ()  # empty: the door is not about one trust's or practice's data
    passed: frozenset[int] = frozenset({200})

    def may_pass(self, identity: Identity, owner: str | None) -> bool:
        if self.audience == PUBLIC:
            return True
        if self.audience == NOBODY:
            return False
        audiences = {CLINICIAN, ADMIN} if self.audience == SIGNED_IN else {self.audience}
        if identity.kind not in audiences:
            return False
        return owner is None or identity.owner == owner


def _same(path: str) -> Callable[[World, str], Knock]:
    return lambda w, o: Knock(path)


def _doc(w: World, o: str) -> int:
    return w.document[B if o == B else A]


def _hospital(w: World, o: str) -> Knock:
    sender = w.sender[A if o in (A, MIXED) else B]
    number = w.number[B if o in (B, MIXED) else A]
    return Knock(
        f"/hospital/v1/documents/{sender}/{number}/decision",
        json={"visibility": "visible", "decided_by": {"code": "EPR", "name": "EPR"}},
    )


def _gp(suffix: str) -> Callable[[World, str], Knock]:
    def knock(w: World, o: str) -> Knock:
        practice = w.practice[A if o in (A, MIXED) else B]
        document = w.document[B if o in (B, MIXED) else A]
        return Knock(f"/gp/v1/practices/{practice}/documents/{document}{suffix}")

    return knock


_ingested = itertools.count(1)


def _ingest(w: World, o: str) -> Knock:
    n = next(_ingested)
    body = samples.mdm(
        sender=w.sender[o],
        practice=w.practice[o],
        control_id=f"WALK{n}",
        number=f"WALK-{o}-{n}",
    )
    return Knock("/hl7/v2/messages", hl7=body)


PAGE_POST = frozenset({200, 302, 409, 422})  # the view ran: done, or the (empty) form refused

DOORS: dict[tuple[str, str], Door] = {
    # Anyone.
    ("/", "GET"): Door(PUBLIC, _same("/"), passed=frozenset({302})),
    ("/login", "GET"): Door(PUBLIC, _same("/login"), passed=frozenset({200, 302})),
    # Without the form's token the sign-in form is refused (400); signed in, it redirects.
    ("/login", "POST"): Door(PUBLIC, _same("/login"), passed=frozenset({302, 400})),
    ("/healthz", "GET"): Door(PUBLIC, _same("/healthz")),
    ("/readyz", "GET"): Door(PUBLIC, _same("/readyz")),
    # Only with FLAGGING_METRICS_TOKEN set (tests/api/test_metrics.py); these settings leave it
    # closed to everyone.
    ("/metrics", "GET"): Door(NOBODY, _same("/metrics")),
    ("/static/<path:filename>", "GET"): Door(PUBLIC, _same("/static/flagging.css")),
    ("/gp/v1/openapi.json", "GET"): Door(PUBLIC, _same("/gp/v1/openapi.json")),
    # Any signed-in person.
    ("/logout", "POST"): Door(SIGNED_IN, _same("/logout"), passed=frozenset({200, 302})),
    # Clinicians, each only their own trust's documents.
    ("/worklist", "GET"): Door(CLINICIAN, _same("/worklist")),
    ("/documents/<int:document_id>", "GET"): Door(
        CLINICIAN, lambda w, o: Knock(f"/documents/{_doc(w, o)}"), (A, B)
    ),
    ("/documents/<int:document_id>/decision", "POST"): Door(
        CLINICIAN,
        lambda w, o: Knock(f"/documents/{_doc(w, o)}/decision", form={}),
        (A, B),
        PAGE_POST,
    ),
    ("/documents/<int:document_id>/versions/<int:version>/content", "GET"): Door(
        CLINICIAN, lambda w, o: Knock(f"/documents/{_doc(w, o)}/versions/1/content"), (A, B)
    ),
    ("/documents/by-number/<sender>/<path:number>", "GET"): Door(
        CLINICIAN,
        lambda w, o: Knock(
            f"/documents/by-number/{w.sender[A if o in (A, MIXED) else B]}/"
            f"{w.number[B if o in (B, MIXED) else A]}"
        ),
        (A, B, MIXED),
        frozenset({302}),
    ),
    # Administrators.
    ("/admin/", "GET"): Door(ADMIN, _same("/admin/")),
    ("/admin/senders", "GET"): Door(ADMIN, _same("/admin/senders")),
    ("/admin/senders/<int:sender_id>/policy", "POST"): Door(
        ADMIN, lambda w, o: Knock(f"/admin/senders/{w.sender_id}/policy", form={}), (), PAGE_POST
    ),
    ("/admin/senders/<int:sender_id>/review-windows", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/senders/{w.sender_id}/review-windows", form={}),
        (),
        PAGE_POST,
    ),
    ("/admin/senders/<int:sender_id>/review-windows/<int:window_id>/delete", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(
            f"/admin/senders/{w.sender_id}/review-windows/{w.window_id}/delete", form={}
        ),
        (),
        PAGE_POST | {404},  # the first administrator's knock deletes it
    ),
    ("/admin/practices", "GET"): Door(ADMIN, _same("/admin/practices")),
    ("/admin/practices", "POST"): Door(
        ADMIN, lambda w, o: Knock("/admin/practices", form={}), (), PAGE_POST
    ),
    ("/admin/users", "GET"): Door(ADMIN, _same("/admin/users")),
    ("/admin/users", "POST"): Door(
        ADMIN, lambda w, o: Knock("/admin/users", form={}), (), PAGE_POST
    ),
    ("/admin/users/<int:user_id>/reset-password", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/users/{w.user_id}/reset-password", form={}),
        (),
        PAGE_POST,
    ),
    ("/admin/users/<int:user_id>/active", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/users/{w.user_id}/active", form={"active": "1"}),
        (),
        PAGE_POST,
    ),
    ("/admin/rules", "GET"): Door(ADMIN, _same("/admin/rules")),
    ("/admin/rules", "POST"): Door(
        ADMIN, lambda w, o: Knock("/admin/rules", form={}), (), PAGE_POST
    ),
    ("/admin/rules/<int:rule_id>/active", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/rules/{w.rule_id}/active", form={"active": "1"}),
        (),
        PAGE_POST,
    ),
    ("/admin/rules/starter", "POST"): Door(
        ADMIN, lambda w, o: Knock("/admin/rules/starter", form={}), (), PAGE_POST
    ),
    ("/admin/messages", "GET"): Door(ADMIN, _same("/admin/messages")),
    ("/admin/messages/<int:message_id>/reprocess", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/messages/{w.message_id}/reprocess", form={}),
        (),
        PAGE_POST,
    ),
    ("/admin/messages/<int:message_id>", "GET"): Door(
        ADMIN, lambda w, o: Knock(f"/admin/messages/{w.message_id}")
    ),
    ("/admin/audit", "GET"): Door(ADMIN, _same("/admin/audit")),
    ("/admin/audit/subject-access", "GET"): Door(
        ADMIN, _same(f"/admin/audit/subject-access?patient={samples.NHS_NUMBERS[0]}")
    ),
    ("/admin/unroutable", "GET"): Door(ADMIN, _same("/admin/unroutable")),
    ("/admin/dashboard", "GET"): Door(ADMIN, _same("/admin/dashboard")),
    ("/admin/search", "GET"): Door(ADMIN, _same("/admin/search")),
    ("/admin/search/messages/<int:message_id>", "GET"): Door(
        ADMIN, lambda w, o: Knock(f"/admin/search/messages/{w.message_id}")
    ),
    ("/admin/search/messages/<int:message_id>/close", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/search/messages/{w.message_id}/close", form={}),
        (),
        PAGE_POST,
    ),
    ("/admin/documents/<int:document_id>/route", "POST"): Door(
        ADMIN,
        lambda w, o: Knock(f"/admin/documents/{w.document[A]}/route", form={}),
        (),
        PAGE_POST,
    ),
    # GP systems, each only its practices' feed and documents.
    ("/gp/v1/practices/<ods_code>/feed", "GET"): Door(
        GP, lambda w, o: Knock(f"/gp/v1/practices/{w.practice[o]}/feed"), (A, B)
    ),
    ("/gp/v1/practices/<ods_code>/acknowledgements", "POST"): Door(
        GP,
        lambda w, o: Knock(f"/gp/v1/practices/{w.practice[o]}/acknowledgements", json={"up_to": 0}),
        (A, B),
    ),
    ("/gp/v1/practices/<ods_code>/documents/<int:document_id>", "GET"): Door(
        GP, _gp(""), (A, B, MIXED)
    ),
    ("/gp/v1/practices/<ods_code>/documents/<int:document_id>/hl7v2", "GET"): Door(
        GP, _gp("/hl7v2"), (A, B, MIXED)
    ),
    ("/gp/v1/practices/<ods_code>/documents/<int:document_id>/fhir", "GET"): Door(
        GP, _gp("/fhir"), (A, B, MIXED)
    ),
    ("/gp/v1/practices/<ods_code>/documents/<int:document_id>/content", "GET"): Door(
        GP, _gp("/content"), (A, B, MIXED)
    ),
    # Hospital systems, each only as itself.
    ("/hl7/v2/messages", "POST"): Door(SENDER, _ingest, (A, B)),
    ("/hospital/v1/documents/<sender>/<path:number>/decision", "POST"): Door(
        SENDER, _hospital, (A, B, MIXED)
    ),
}


@dataclass(frozen=True)
class Identity:
    name: str
    kind: str  # anonymous, clinician, admin, gp, sender, revoked
    owner: str | None = None
    username: str = ""
    headers: Callable[[World, str], dict[str, str]] = field(default=lambda w, path: {})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


IDENTITIES = [
    Identity("anonymous", "anonymous"),
    Identity("clinician of trust A", CLINICIAN, A, accounts.CLINICIAN),
    Identity("clinician of trust B", CLINICIAN, B, CLINICIAN_B),
    Identity("administrator", ADMIN, None, accounts.ADMIN),
    Identity("GP token of practice A", GP, A, headers=lambda w, p: _bearer(w.gp_token[A])),
    Identity("GP token of practice B", GP, B, headers=lambda w, p: _bearer(w.gp_token[B])),
    Identity("sender token of trust A", SENDER, A, headers=lambda w, p: _bearer(w.sender_token[A])),
    Identity("sender token of trust B", SENDER, B, headers=lambda w, p: _bearer(w.sender_token[B])),
    Identity(
        "revoked token",
        "revoked",
        A,
        headers=lambda w, p: _bearer(
            w.revoked_gp_token if p.startswith("/gp/") else w.revoked_sender_token
        ),
    ),
]


@pytest.fixture
def world(db: Database, handler: MessageHandler) -> World:
    now = datetime.now(UTC)
    add_practice(db, OTHER_PRACTICE)
    with db.transaction() as session:
        token_b = organisations.add_sender(session, TRUST_B, "Trust B")
        sender_a = organisations.sender_by_code(session, samples.SENDER)
        revoked_sender = organisations.issue_sender_token(session, samples.SENDER, now=now)
        organisations.revoke_sender_token(session, revoked_sender.id, now=now)
        revoked_gp = gp_tokens.issue_token(session, [samples.PRACTICE], now=now)
        gp_tokens.revoke_token(session, revoked_gp.id, now=now)
        gp_a = gp_tokens.issue_token(session, [samples.PRACTICE], now=now).token
        gp_b = gp_tokens.issue_token(session, [OTHER_PRACTICE], now=now).token
        sender_id = sender_a.id
        window = organisations.set_review_window(session, sender_id, "DS", 60)
        rule = screening.add_rule(session, name="walk", kind="word", pattern="walk")
        window_id, rule_id = window.id, rule.id
    with db.transaction() as session:
        sender_a_token = organisations.issue_sender_token(session, samples.SENDER, now=now).token
    send(handler, samples.mdm(control_id="AUTH-A", number="AUTH-A"))
    send(
        handler,
        samples.mdm(control_id="AUTH-B", number="AUTH-B", sender=TRUST_B, practice=OTHER_PRACTICE),
    )
    accounts.add_clinician(db)
    accounts.add_clinician(db, CLINICIAN_B, sender=TRUST_B, code="C7654321", name="Dr Blue")
    accounts.add_admin(db)
    victim = accounts.add_clinician(db, "kim.other", code="C0000001", name="Dr Other")
    with db.reading() as session:
        message_id = session.scalars(select(InboundMessage.id).limit(1)).one()
    return World(
        sender={A: samples.SENDER, B: TRUST_B},
        practice={A: samples.PRACTICE, B: OTHER_PRACTICE},
        document={A: document_id(db, "AUTH-A"), B: document_id(db, "AUTH-B")},
        number={A: "AUTH-A", B: "AUTH-B"},
        sender_id=sender_id,
        message_id=message_id,
        rule_id=rule_id,
        window_id=window_id,
        user_id=victim,
        gp_token={A: gp_a, B: gp_b},
        sender_token={A: sender_a_token, B: token_b},
        revoked_gp_token=revoked_gp.token,
        revoked_sender_token=revoked_sender.token,
    )


def _rules(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def test_every_route_of_the_app_is_classified(app: Flask) -> None:
    routes = _rules(app)
    assert routes - DOORS.keys() == set(), "classify each new route in DOORS: who may pass it?"
    assert DOORS.keys() - routes == set(), "DOORS names routes the app no longer has"


def _client(app: Flask, identity: Identity) -> tuple[FlaskClient, str]:
    """A fresh browser (or API client) for the identity, and its CSRF token if signed in."""
    client = app.test_client()
    if not identity.username:
        return client, ""
    accounts.sign_in(client, identity.username)
    home = "/admin/" if identity.kind == ADMIN else "/worklist"
    return client, accounts.form_token(client, home)


def _knock(
    client: FlaskClient, method: str, knock: Knock, csrf: str, headers: dict[str, str]
) -> TestResponse:
    kwargs: dict[str, Any] = {"headers": headers}
    if knock.json is not None:
        kwargs["json"] = knock.json
    elif knock.hl7 is not None:
        kwargs["data"] = knock.hl7
        kwargs["content_type"] = "application/hl7-v2"
    elif method == "POST":
        kwargs["data"] = {**(knock.form or {}), **({"csrf_token": csrf} if csrf else {})}
    return client.open(knock.path, method=method, **kwargs)


def _refused(response: TestResponse) -> bool:
    if response.status_code == 302:
        return response.headers["Location"].startswith("/login")
    if response.status_code == 200 and response.mimetype == "application/hl7-v2":
        # HL7 over HTTP answers 200 with the ACK: a message naming another sender is AR.
        return b"MSA|AR|" in response.data
    return response.status_code in (400, 401, 403, 404)


def _passed(door: Door, response: TestResponse) -> bool:
    if response.status_code not in door.passed:
        return False
    if response.status_code == 302 and door.audience not in (PUBLIC, SIGNED_IN):
        # (Signing out ends at the sign-in page; for other doors that is a refusal.)
        return not response.headers["Location"].startswith("/login")
    if door.audience == SENDER and response.mimetype == "application/hl7-v2":
        return b"MSA|AA|" in response.data
    return True


@pytest.mark.parametrize("identity", IDENTITIES, ids=lambda i: i.name)
def test_each_identity_passes_only_its_own_doors(
    app: Flask, world: World, db: Database, identity: Identity
) -> None:
    wrong: list[str] = []
    client, csrf = _client(app, identity)
    for (rule, method), door in sorted(DOORS.items()):
        for owner in door.owners or (None,):
            knock = door.knock(world, owner or A)
            response = _knock(client, method, knock, csrf, identity.headers(world, knock.path))
            expected = door.may_pass(identity, owner)
            ok = _passed(door, response) if expected else _refused(response)
            response.close()  # a static file's answer holds the file open until closed
            if rule == "/logout":  # it ended the session: sign in again for the next doors
                client, csrf = _client(app, identity)
            if not ok:
                verb = "pass" if expected else "be refused"
                wrong.append(
                    f"{method} {knock.path} ({rule}) should {verb}, "
                    f"got {response.status_code} {response.headers.get('Location', '')}"
                )
    assert wrong == [], f"{identity.name}:\n" + "\n".join(wrong)
    # Nothing written across trusts: a document's decisions came only through its own doors.
    with db.reading() as session:
        for owner in (A, B):
            decided = session.scalars(
                select(Decision.id).where(Decision.document_id == world.document[owner])
            ).all()
            allowed_writer = identity.kind == SENDER and identity.owner == owner
            assert bool(decided) == allowed_writer, (identity.name, owner)
        rows = session.execute(select(Practice.ods_code, Practice.acknowledged_at)).all()
        acknowledged = {code: at for code, at in rows}  # noqa: C416 -- Rows, not pairs, to mypy
    for owner in (A, B):
        may_ack = identity.kind == GP and identity.owner == owner
        assert (acknowledged[world.practice[owner]] is not None) == may_ack, (identity.name, owner)


def test_a_clinicians_worklist_lists_only_their_own_trusts_documents(
    app: Flask, world: World
) -> None:
    for identity, own, other in ((IDENTITIES[1], A, B), (IDENTITIES[2], B, A)):
        client, _ = _client(app, identity)
        html = client.get("/worklist?who=all").get_data(as_text=True)
        assert f"/documents/{world.document[own]}" in html
        assert f"/documents/{world.document[other]}" not in html

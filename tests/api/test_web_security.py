"""The small doors of the web side: sessions end on the server, `next` stays on this site,
foreign origins (including "null") are refused, sign-in is throttled per address, integers out
of range are never a 500, and every answer carries protective headers."""

from __future__ import annotations

import base64

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import select

from flagging import passwords, users
from flagging.models import User
from flagging.storage.engine import Database
from tests import accounts, samples
from tests.api.conftest import GPWorld
from tests.gp_helpers import document_id, send


@pytest.fixture
def clinician(db: Database, sender_token: str) -> int:
    return accounts.add_clinician(db)


def _login(client: FlaskClient, username: str, password: str, next_url: str = ""):
    token = accounts.csrf_token(client.get("/login").get_data(as_text=True))
    form = {"username": username, "password": password, "csrf_token": token}
    if next_url:
        form["next"] = next_url
    return client.post("/login", data=form)


def _copy_of_session(client: FlaskClient, other: FlaskClient) -> None:
    """Give `other` the very cookie `client` holds, as a thief who copied it would."""
    cookie = client.get_cookie("flagging_session")
    assert cookie is not None
    other.set_cookie("flagging_session", cookie.value)


# Sessions end on the server ------------------------------------------------------------------


def test_a_copied_session_cookie_is_refused_once_its_owner_signs_out(
    app, client: FlaskClient, clinician: int
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    thief = app.test_client()
    _copy_of_session(client, thief)
    assert thief.get("/worklist").status_code == 200

    token = accounts.form_token(client, "/worklist")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302

    assert thief.get("/worklist").status_code == 302
    assert client.get("/worklist").status_code == 302
    # Signing in again starts a session that works, and the old copy stays dead.
    accounts.sign_in(client, accounts.CLINICIAN)
    assert client.get("/worklist").status_code == 200
    assert thief.get("/worklist").status_code == 302


def test_a_sign_in_that_rehashes_the_password_keeps_its_session(
    db: Database, client: FlaskClient, clinician: int
) -> None:
    """A hash made with other parameters is replaced at sign-in; the session that sign-in
    started must still be the user's on the next request (it is checked against the user)."""
    old = PasswordHasher(time_cost=2, memory_cost=8, parallelism=1).hash(accounts.PASSWORD)
    with db.transaction() as session:
        session.get_one(User, clinician).password_hash = old
    assert passwords.needs_rehash(old)

    accounts.sign_in(client, accounts.CLINICIAN)

    assert client.get("/worklist").status_code == 200
    with db.reading() as session:
        stored = session.scalars(select(User.password_hash).where(User.id == clinician)).one()
    assert stored != old
    assert passwords.verify_password(stored, accounts.PASSWORD)


@pytest.mark.parametrize("how", ["password reset", "deactivation"])
def test_a_copied_session_cookie_is_refused_after_a_password_reset_or_deactivation(
    app, client: FlaskClient, clinician: int, db: Database, how: str
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    thief = app.test_client()
    _copy_of_session(client, thief)
    with db.transaction() as session:
        if how == "password reset":
            users.reset_password(session, clinician, "a brand new password")
        else:
            users.set_user_active(session, clinician, False)
            users.set_user_active(session, clinician, True)
    assert thief.get("/worklist").status_code == 302
    assert client.get("/worklist").status_code == 302


# Login `next` --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "///evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example",
        "/\\\\evil.example",
        "/\tevil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/%2F%2Fevil.example",
        "/%2fevil.example",
        "/%5Cevil.example",
        "/%255C%255Cevil.example",
        "%2F%2Fevil.example",
        "/%09/evil.example",
        "https:/evil.example",
        "/%2525252F%2525252Fevil.example",
        "/%252525252525252F%252525252525252Fevil.example",
    ],
)
def test_sign_in_ignores_a_next_that_leads_off_this_site(
    client: FlaskClient, clinician: int, target: str
) -> None:
    response = _login(client, accounts.CLINICIAN, accounts.PASSWORD, target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/worklist"


@pytest.mark.parametrize(
    "target", ["/documents/7?version=2", "/worklist?patient=Smith%2C%20John&status=pending"]
)
def test_sign_in_follows_a_next_that_is_a_path_on_this_site(
    client: FlaskClient, clinician: int, target: str
) -> None:
    response = _login(client, accounts.CLINICIAN, accounts.PASSWORD, target)
    assert response.headers["Location"] == target


# Origin --------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["null", "https://evil.example"])
def test_a_form_from_a_foreign_or_null_origin_is_refused(
    client: FlaskClient, clinician: int, origin: str
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    token = accounts.form_token(client, "/worklist")
    response = client.post("/logout", data={"csrf_token": token}, headers={"Origin": origin})
    assert response.status_code == 400
    assert client.get("/worklist").status_code == 200


def test_a_form_from_this_site_is_accepted(client: FlaskClient, clinician: int) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    token = accounts.form_token(client, "/worklist")
    response = client.post(
        "/logout", data={"csrf_token": token}, headers={"Origin": "http://localhost"}
    )
    assert response.status_code == 302


# Sign-in throttling --------------------------------------------------------------------------


def test_one_address_failing_across_many_accounts_is_blocked_even_with_a_right_password(
    client: FlaskClient, clinician: int
) -> None:
    for n in range(users.MAX_ADDRESS_FAILURES):
        # A different (unknown) account each time: no account lock is ever reached.
        assert _login(client, f"nobody{n}", "wrong password guess").status_code == 401
    refused = _login(client, accounts.CLINICIAN, accounts.PASSWORD)
    assert refused.status_code == 401
    assert "from your network" in refused.get_data(as_text=True)


def test_another_address_still_signs_in_while_one_is_blocked(
    app, client: FlaskClient, clinician: int
) -> None:
    for n in range(users.MAX_ADDRESS_FAILURES):
        _login(client, f"nobody{n}", "wrong password guess")
    elsewhere = app.test_client()
    token = accounts.csrf_token(elsewhere.get("/login").get_data(as_text=True))
    response = elsewhere.post(
        "/login",
        data={"username": accounts.CLINICIAN, "password": accounts.PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 302


def test_a_locked_account_costs_one_password_verification_like_a_wrong_password(
    client: FlaskClient, clinician: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []
    real_verify = passwords.verify_password

    def counting(password_hash: str, password: str) -> bool:
        verified.append(password)
        return real_verify(password_hash, password)

    # Every verification, real or burnt (burn_time verifies against a dummy hash), goes here.
    monkeypatch.setattr(passwords, "verify_password", counting)
    _login(client, accounts.CLINICIAN, "wrong password 1")
    assert verified == ["wrong password 1"]
    for n in range(2, users.MAX_FAILED_LOGINS + 1):
        _login(client, accounts.CLINICIAN, f"wrong password {n}")
    verified.clear()
    locked = _login(client, accounts.CLINICIAN, "wrong password again")
    assert "locked" in locked.get_data(as_text=True)
    assert verified == ["wrong password again"]


# Integers out of range -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [str(2**70), str(2**31), "-1"])
def test_an_integer_out_of_range_in_a_path_is_404_never_500(
    client: FlaskClient, clinician: int, gp_world: GPWorld, value: str
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    assert client.get(f"/documents/{value}").status_code == 404
    assert client.get(f"/documents/{gp_world.mine}/versions/{value}/content").status_code == 404
    bearer = {"Authorization": f"Bearer {gp_world.token}"}
    gp = f"/gp/v1/practices/{samples.PRACTICE}/documents/{value}"
    assert client.get(gp, headers=bearer).status_code == 404


@pytest.mark.parametrize("value", [str(2**70), str(2**31), "-1", "x"])
def test_an_integer_out_of_range_in_a_query_is_400_never_500(
    client: FlaskClient, clinician: int, gp_world: GPWorld, db: Database, value: str
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    assert client.get(f"/documents/{gp_world.mine}?version={value}").status_code == 400
    bearer = {"Authorization": f"Bearer {gp_world.token}"}
    practice = f"/gp/v1/practices/{samples.PRACTICE}"
    assert client.get(f"{practice}/feed?after={value}", headers=bearer).status_code == 400
    version = f"{practice}/documents/{gp_world.mine}?version={value}"
    assert client.get(version, headers=bearer).status_code == 400
    admin = accounts.add_admin(db)
    assert admin
    client.post("/logout", data={"csrf_token": accounts.form_token(client, "/worklist")})
    accounts.sign_in(client, accounts.ADMIN)
    assert client.get(f"/admin/messages?before={value}").status_code == 400
    assert client.get(f"/admin/unroutable?before={value}").status_code == 400


def test_a_forged_revision_out_of_range_is_a_form_error_never_500(
    client: FlaskClient, clinician: int, gp_world: GPWorld
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    url = f"/documents/{gp_world.mine}"
    token = accounts.form_token(client, url)
    response = client.post(
        f"{url}/decision",
        data={"csrf_token": token, "decision": "release", "revision": str(2**70)},
    )
    assert response.status_code == 422


# Headers -------------------------------------------------------------------------------------


# Content served safely, and headers on every answer -------------------------------------------


def _ed(subtype_major: str, subtype: str, data: bytes) -> list[str]:
    value = f"^{subtype_major}^{subtype}^Base64^" + base64.b64encode(data).decode()
    return [samples.segment("OBX", {1: "1", 2: "ED", 3: "REPORT", 5: value, 11: "F"})]


@pytest.mark.parametrize(
    ("major", "subtype", "data"),
    [
        ("TEXT", "HTML", b"<script>alert(document.domain)</script>"),
        ("IM", "SVG+XML", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"),
        ("TEXT", "XML", b"<?xml version='1.0'?><x/>"),
    ],
)
def test_gp_content_a_browser_could_run_is_served_as_an_attachment_of_no_type(
    client: FlaskClient,
    gp_world: GPWorld,
    handler,
    db: Database,
    major: str,
    subtype: str,
    data: bytes,
) -> None:
    send(
        handler,
        samples.oru(control_id="ACT1", number="ACTIVE-1", observations=_ed(major, subtype, data)),
    )
    document = document_id(db, "ACTIVE-1")
    response = client.get(
        f"/gp/v1/practices/{samples.PRACTICE}/documents/{document}/content",
        headers={"Authorization": f"Bearer {gp_world.token}"},
    )
    assert response.status_code == 200
    assert response.data == data
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_gp_text_and_pdf_content_is_served_inline_with_its_type(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    bearer = {"Authorization": f"Bearer {gp_world.token}"}
    base = f"/gp/v1/practices/{samples.PRACTICE}/documents"
    text = client.get(f"{base}/{gp_world.mine}/content", headers=bearer)
    pdf = client.get(f"{base}/{gp_world.pdf}/content", headers=bearer)
    assert (text.mimetype, pdf.mimetype) == ("text/plain", "application/pdf")
    assert text.headers["Content-Disposition"] == pdf.headers["Content-Disposition"] == "inline"


def test_every_api_answer_is_nosniff_with_a_sandboxing_policy_and_hospital_ones_no_store(
    client: FlaskClient, gp_world: GPWorld, sender_token: str
) -> None:
    bearer = {"Authorization": f"Bearer {gp_world.token}"}
    answers = {
        "gp feed": client.get(f"/gp/v1/practices/{samples.PRACTICE}/feed", headers=bearer),
        "gp 401": client.get(f"/gp/v1/practices/{samples.PRACTICE}/feed"),
        "openapi": client.get("/gp/v1/openapi.json"),
        "health": client.get("/healthz"),
        "unknown url": client.get("/no/such/page"),
        "ingest": client.post(
            "/hl7/v2/messages",
            data=samples.mdm(control_id="HDR1", number="HDR-1"),
            headers={"Authorization": f"Bearer {sender_token}"},
            content_type="application/hl7-v2",
        ),
        "ingest 401": client.post("/hl7/v2/messages", data=b"x"),
        "hospital": client.post(
            f"/hospital/v1/documents/{samples.SENDER}/HDR-1/decision",
            json={"visibility": "visible", "decided_by": {"code": "C1"}},
            headers={"Authorization": f"Bearer {sender_token}"},
        ),
        "hospital 401": client.post(f"/hospital/v1/documents/{samples.SENDER}/HDR-1/decision"),
    }
    for name, response in answers.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox", name
    assert answers["hospital"].status_code == 200
    for name in ("ingest", "ingest 401", "hospital", "hospital 401", "gp feed"):
        assert answers[name].headers["Cache-Control"] == "no-store", name

"""Signing in and out of the clinicians' pages: sessions, the login rate limit, roles and the
optional single sign-on header."""

from __future__ import annotations

import dataclasses

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cli.wiring import Services, web_app
from config import Settings
from flagging import users
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts


@pytest.fixture
def clinician(db: Database, sender_token: str) -> int:
    return accounts.add_clinician(db)


def _login(client: FlaskClient, username: str, password: str, next_url: str = ""):
    token = accounts.csrf_token(client.get("/login").get_data(as_text=True))
    form = {"username": username, "password": password, "csrf_token": token}
    if next_url:
        form["next"] = next_url
    return client.post("/login", data=form)


def test_pages_send_a_signed_out_visitor_to_sign_in_and_back(
    client: FlaskClient, clinician: int
) -> None:
    response = client.get("/worklist?status=pending")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/worklist?status%3Dpending"

    signed_in = _login(client, accounts.CLINICIAN, accounts.PASSWORD, "/worklist?status=pending")
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"] == "/worklist?status=pending"
    assert client.get("/worklist").status_code == 200


def test_sign_in_never_sends_the_browser_to_another_site(
    client: FlaskClient, clinician: int
) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = _login(client, accounts.CLINICIAN, accounts.PASSWORD, target)
        assert response.headers["Location"] == "/worklist"
        client.post("/logout", data={"csrf_token": accounts.form_token(client, "/worklist")})


def test_session_cookie_is_http_only_and_same_site(client: FlaskClient, clinician: int) -> None:
    response = _login(client, accounts.CLINICIAN, accounts.PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("flagging_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_session_cookie_is_secure_in_production(
    db: Database, settings: Settings, handler: MessageHandler, clinician: int
) -> None:
    production = dataclasses.replace(settings, env="production")
    client = web_app(Services(production, db, handler)).test_client()
    response = _login(client, accounts.CLINICIAN, accounts.PASSWORD)
    assert "Secure" in response.headers["Set-Cookie"]


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(
    client: FlaskClient, clinician: int
) -> None:
    wrong_password = _login(client, accounts.CLINICIAN, "not the password")
    unknown_user = _login(client, "nobody", accounts.PASSWORD)
    for response in (wrong_password, unknown_user):
        assert response.status_code == 401
        assert "The username or password is not right." in response.get_data(as_text=True)
    assert client.get("/worklist").status_code == 302


def test_five_failed_sign_ins_lock_the_account_even_against_the_right_password(
    client: FlaskClient, clinician: int
) -> None:
    for _ in range(4):
        assert _login(client, accounts.CLINICIAN, "wrong").status_code == 401
    fifth = _login(client, accounts.CLINICIAN, "wrong")
    assert "this account is locked" in fifth.get_data(as_text=True)

    right = _login(client, accounts.CLINICIAN, accounts.PASSWORD)
    assert right.status_code == 401
    assert "Try again in 15 minutes" in right.get_data(as_text=True)


def test_sign_in_form_without_its_csrf_token_is_refused(
    client: FlaskClient, clinician: int
) -> None:
    client.get("/login")
    response = client.post(
        "/login", data={"username": accounts.CLINICIAN, "password": accounts.PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/worklist").status_code == 302


def test_signing_out_needs_the_form_token_and_ends_the_session(
    client: FlaskClient, clinician: int
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    assert client.get("/logout").status_code == 405  # a link elsewhere cannot sign you out
    assert client.post("/logout").status_code == 400
    assert client.get("/worklist").status_code == 200

    token = accounts.form_token(client, "/worklist")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/worklist").status_code == 302


def test_resetting_a_password_signs_out_browsers_using_the_old_one(
    client: FlaskClient, clinician: int, db: Database
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    with db.transaction() as session:
        users.reset_password(session, clinician, "a brand new password")
    assert client.get("/worklist").status_code == 302


def test_an_account_made_inactive_is_signed_out_at_its_next_request(
    client: FlaskClient, clinician: int, db: Database
) -> None:
    accounts.sign_in(client, accounts.CLINICIAN)
    with db.transaction() as session:
        users.set_user_active(session, clinician, False)
    assert client.get("/worklist").status_code == 302
    assert _login(client, accounts.CLINICIAN, accounts.PASSWORD).status_code == 401


def test_each_role_sees_only_its_own_pages(
    client: FlaskClient, clinician: int, db: Database
) -> None:
    accounts.add_admin(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    assert client.get("/").headers["Location"] == "/worklist"
    assert client.get("/admin/users").status_code == 403

    admin = client.application.test_client()
    accounts.sign_in(admin, accounts.ADMIN)
    assert admin.get("/").headers["Location"] == "/admin/"
    assert admin.get("/worklist").status_code == 403


def test_trusted_header_is_ignored_unless_single_sign_on_is_configured(
    client: FlaskClient, clinician: int
) -> None:
    response = client.get("/worklist", headers={"X-Remote-User": accounts.CLINICIAN})
    assert response.status_code == 302


@pytest.fixture
def sso_app(db: Database, settings: Settings, handler: MessageHandler) -> Flask:
    configured = dataclasses.replace(settings, trusted_user_header="X-Remote-User")
    return web_app(Services(configured, db, handler))


def test_trusted_header_signs_in_the_named_user_when_configured(
    sso_app: Flask, clinician: int
) -> None:
    client = sso_app.test_client()
    response = client.get("/worklist", headers={"X-Remote-User": accounts.CLINICIAN.upper()})
    assert response.status_code == 200
    assert "Dr Sam Grey" in response.get_data(as_text=True)
    assert client.get("/worklist").status_code == 302  # no header, no session: signed out


def test_trusted_header_naming_an_unknown_user_is_refused(sso_app: Flask, clinician: int) -> None:
    response = sso_app.test_client().get("/worklist", headers={"X-Remote-User": "intruder"})
    assert response.status_code == 403
    assert "intruder" in response.get_data(as_text=True)

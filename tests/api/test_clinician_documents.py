"""A document's page and the decision form: trust boundaries, CSRF, escaping, stale pages."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from flagging import organisations, screening
from flagging.models import Decision, Document
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples


@pytest.fixture
def client_in(client: FlaskClient, db: Database, sender_token: str) -> FlaskClient:
    """A signed-in clinician of the sample trust (RXX)."""
    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    return client


def _document(handler: MessageHandler, db: Database, number: str = "DOC-1", **options) -> int:
    control = options.pop("control_id", f"M-{number}")
    accounts.ingest(handler, samples.mdm(control_id=control, number=number, **options))
    return accounts.document_id(db, number)


def _decide(client: FlaskClient, document: int, **form: str):
    token = accounts.form_token(client, f"/documents/{document}")
    page = client.get(f"/documents/{document}").get_data(as_text=True)
    revision = re.search(r'name="revision" value="(\d+)"', page)
    assert revision
    data = {"csrf_token": token, "revision": revision.group(1), **form}
    return client.post(f"/documents/{document}/decision", data=data)


def _decisions(db: Database, document: int) -> list[Decision]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Decision).where(Decision.document_id == document).order_by(Decision.id)
            )
        )


def _visibility(db: Database, document: int) -> str:
    with db.transaction() as session:
        found = session.get(Document, document)
        assert found is not None
        return found.visibility


def test_document_page_shows_patient_nhs_number_3_3_4_author_and_practice(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    html = client_in.get(f"/documents/{document}").get_data(as_text=True)
    assert "TESTPATIENT" in html
    assert "999 000 0018" in html
    assert "Dr Sam Grey" in html  # TXA-9, written as people write it
    assert "The Surgery" in html
    assert "Discharged home." in html
    assert "Needs a decision" in html


def test_withholding_records_reason_note_until_date_and_who_decided(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    response = _decide(
        client_in,
        document,
        decision="withhold",
        reason="third-party",
        note="Mentions her brother's diagnosis.",
        withhold_until="2099-01-31",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/documents/{document}"
    [decision] = _decisions(db, document)
    assert (decision.visibility, decision.reason, decision.source) == (
        "withheld",
        "third-party",
        "clinician",
    )
    assert decision.note == "Mentions her brother's diagnosis."
    assert decision.decided_by_code == accounts.CLINICIAN_CODE
    assert decision.decided_by_name == "Dr Sam Grey"
    assert decision.withhold_until is not None
    assert decision.withhold_until.isoformat() == "2099-01-31T00:00:00+00:00"  # midnight, UK

    page = client_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "Withheld: the patient will not see this document." in page
    assert "Reason: Information about a third party" in page
    assert "Mentions her brother&#39;s diagnosis." in page


def test_releasing_makes_the_document_visible(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    assert _decide(client_in, document, decision="release").status_code == 302
    assert _visibility(db, document) == "visible"


def test_withholding_without_a_reason_is_refused_with_a_message_by_the_field(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    response = _decide(client_in, document, decision="withhold", note="kept")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert "Choose why the patient must not see it" in html
    assert ">kept</textarea>" in html  # what was typed is kept
    assert _decisions(db, document) == []


def test_other_reason_needs_a_note(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    response = _decide(client_in, document, decision="withhold", reason="other")
    assert response.status_code == 422
    assert "Say in the note why" in response.get_data(as_text=True)
    assert _decisions(db, document) == []


def test_withhold_until_in_the_past_is_refused(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    response = _decide(
        client_in, document, decision="withhold", reason="legal", withhold_until="2001-01-01"
    )
    assert response.status_code == 422
    assert "must be in the future" in response.get_data(as_text=True)


def test_post_without_the_csrf_token_is_refused_and_nothing_is_decided(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    for token in (None, "", "forged-token"):
        form = {"decision": "release", "revision": "2"}
        if token is not None:
            form["csrf_token"] = token
        response = client_in.post(f"/documents/{document}/decision", data=form)
        assert response.status_code == 400
        assert "did not come from this service" in response.get_data(as_text=True)
    assert _decisions(db, document) == []
    assert _visibility(db, document) == "pending"


def test_post_that_a_browser_says_came_from_another_site_is_refused(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    token = accounts.form_token(client_in, f"/documents/{document}")
    response = client_in.post(
        f"/documents/{document}/decision",
        data={"csrf_token": token, "decision": "release", "revision": "1"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 400
    assert _decisions(db, document) == []


def test_clinician_of_one_trust_can_neither_see_nor_decide_on_another_trusts_documents(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        organisations.add_sender(session, "ROTHER", "Other Hospitals NHS Trust")
    theirs = _document(handler, db, number="THEIRS-1", sender="ROTHER")
    ours = _document(handler, db, number="OURS-1")

    worklist = client_in.get("/worklist?who=all").get_data(as_text=True)
    assert "OURS-1" in worklist
    assert "THEIRS-1" not in worklist
    assert client_in.get(f"/documents/{theirs}").status_code == 404
    assert client_in.get(f"/documents/{theirs}/versions/1/content").status_code == 404
    assert client_in.get("/documents/by-number/ROTHER/THEIRS-1").status_code == 404

    token = accounts.form_token(client_in, f"/documents/{ours}")
    for decision in ({"decision": "release"}, {"decision": "withhold", "reason": "legal"}):
        response = client_in.post(
            f"/documents/{theirs}/decision",
            data={"csrf_token": token, "revision": "1", **decision},
        )
        assert response.status_code == 404
    assert _decisions(db, theirs) == []
    assert _visibility(db, theirs) == "pending"


def test_document_text_containing_html_or_script_is_shown_as_text(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'
    document = _document(handler, db, lines=(hostile,))
    html = client_in.get(f"/documents/{document}").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; "
        "&amp; &#34;quotes&#34;" in html
    )


def test_screening_hits_are_marked_and_the_text_around_them_stays_escaped(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        screening.add_rule(session, name="Safeguarding", kind="word", pattern="safeguarding")
    document = _document(handler, db, lines=("<b>Safeguarding</b> referral made.",))
    html = client_in.get(f"/documents/{document}").get_data(as_text=True)
    assert (
        '&lt;b&gt;<mark title="Screening: Safeguarding">Safeguarding</mark>&lt;/b&gt; '
        "referral made." in html
    )
    assert "Screening found 1 match" in html


def test_decision_on_a_stale_page_is_refused_when_someone_decided_meanwhile(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    token = accounts.form_token(client_in, f"/documents/{document}")
    opened_at = accounts.revision(db, document)
    first = client_in.post(
        f"/documents/{document}/decision",
        data={"csrf_token": token, "revision": str(opened_at), "decision": "release"},
    )
    assert first.status_code == 302

    second = client_in.post(
        f"/documents/{document}/decision",
        data={
            "csrf_token": token,
            "revision": str(opened_at),
            "decision": "withhold",
            "reason": "serious-harm",
        },
    )
    assert second.status_code == 409
    html = second.get_data(as_text=True)
    assert "Your decision was not saved" in html
    assert "someone else decided" in html
    assert [d.visibility for d in _decisions(db, document)] == ["visible"]


def test_decision_on_a_stale_page_is_refused_when_a_new_version_arrived(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    token = accounts.form_token(client_in, f"/documents/{document}")
    opened_at = accounts.revision(db, document)
    accounts.ingest(
        handler,
        samples.mdm(
            "T06",
            control_id="ADD-1",
            number="DOC-1-A1",
            parent="DOC-1",
            lines=("Addendum: biopsy result awaited.",),
        ),
    )
    response = client_in.post(
        f"/documents/{document}/decision",
        data={"csrf_token": token, "revision": str(opened_at), "decision": "release"},
    )
    assert response.status_code == 409
    assert "a new version arrived" in response.get_data(as_text=True)
    assert _visibility(db, document) == "pending"


def test_versions_are_listed_and_an_older_one_can_be_read(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    accounts.ingest(
        handler,
        samples.mdm(
            "T06",
            control_id="ADD-1",
            number="DOC-1-A1",
            parent="DOC-1",
            lines=("Addendum: biopsy result awaited.",),
        ),
    )
    latest = client_in.get(f"/documents/{document}").get_data(as_text=True)
    assert "Addendum: biopsy result awaited." in latest
    assert f'href="/documents/{document}?version=1"' in latest
    older = client_in.get(f"/documents/{document}?version=1").get_data(as_text=True)
    assert "You are reading version 1 of 2" in older
    assert "Discharged home." in older
    assert "Withhold from patient" not in older  # decisions are made on the latest version


def test_stable_link_by_sender_and_document_number_opens_the_document(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db, number="DS/2026/7")
    accounts.ingest(
        handler,
        samples.mdm("T10", control_id="REP-1", number="DS/2026/7-R", parent="DS/2026/7"),
    )
    for number in ("DS/2026/7", "DS%2F2026%2F7", "DS/2026/7-R"):
        response = client_in.get(f"/documents/by-number/rxx/{number}")
        assert response.status_code == 302, number
        assert response.headers["Location"] == f"/documents/{document}"
    assert client_in.get("/documents/by-number/RXX/NO-SUCH").status_code == 404


def test_stable_link_survives_signing_in_first(
    client: FlaskClient, handler: MessageHandler, db: Database, sender_token: str
) -> None:
    accounts.add_clinician(db)
    document = _document(handler, db, number="DS-9")
    response = client.get("/documents/by-number/RXX/DS-9")
    assert response.headers["Location"] == "/login?next=/documents/by-number/RXX/DS-9"
    token = accounts.csrf_token(client.get(response.headers["Location"]).get_data(as_text=True))
    signed_in = client.post(
        "/login",
        data={
            "username": accounts.CLINICIAN,
            "password": accounts.PASSWORD,
            "csrf_token": token,
            "next": "/documents/by-number/RXX/DS-9",
        },
    )
    assert client.get(signed_in.headers["Location"]).headers["Location"] == f"/documents/{document}"


def test_pdf_is_shown_inline_from_its_own_address(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    accounts.ingest(
        handler,
        samples.build(
            samples.msh("PDF1", "MDM^T02^MDM_T02"),
            samples.segment("EVN", {1: "T02"}),
            samples.pid(),
            samples.pd1(),
            "PV1|1|O",
            samples.txa("LETTER-1"),
            samples.obx_pdf(),
        ),
    )
    document = accounts.document_id(db, "LETTER-1")
    page = client_in.get(f"/documents/{document}").get_data(as_text=True)
    url = f"/documents/{document}/versions/1/content"
    assert f'data="{url}" type="application/pdf"' in page
    response = client_in.get(url)
    assert response.mimetype == "application/pdf"
    assert response.data == samples.TINY_PDF
    assert response.headers["Content-Disposition"].startswith("inline")
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]


def test_pages_are_not_cached_and_may_not_be_framed_by_other_sites(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    response = client_in.get(f"/documents/{document}")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none'
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_withdrawn_document_page_has_one_clear_banner_and_no_decision_form(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    assert _decide(client_in, document, decision="release").status_code == 302
    accounts.ingest(handler, samples.mdm("T11", control_id="CANCEL", lines=()))

    html = client_in.get(f"/documents/{document}").get_data(as_text=True)

    now = html.split('id="history"', 1)[0]  # the history keeps the earlier release, rightly
    assert "Withdrawn by the hospital: the patient will never see this document." in now
    assert "Visible to patient" not in now
    assert "Needs a decision" not in now
    assert "This version carries no text" not in html
    assert 'action="/documents/' not in html  # neither Withhold nor Release is offered
    assert html.count("Never: the hospital withdrew it") == 2  # said of each version


def test_each_version_says_what_the_patient_sees_and_none_needs_a_decision_once_decided(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    document = _document(handler, db)
    accounts.ingest(handler, samples.mdm("T06", control_id="ADD", number="ADD-1", parent="DOC-1"))
    assert _decide(client_in, document, decision="release").status_code == 302

    html = client_in.get(f"/documents/{document}").get_data(as_text=True)
    versions = html.split('id="versions"', 1)[1].split('id="history"', 1)[0]

    assert versions.count("Sees this version") == 2
    assert "Needs a decision" not in versions
    assert "Addendum" in versions  # human words for the change and the event
    assert "Addendum with its text (T06)" in versions
    assert "Original with its text (T02)" in versions
    assert "Discharge summary" in html  # TXA-2 DS in words


def test_worklist_says_which_rule_holds_a_document_and_when_others_become_visible(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        screening.add_starter_rules(session)
    _document(handler, db, number="HELD", lines=("Safeguarding referral made.",))
    _document(handler, db, number="PLAIN", control_id="M-PLAIN2")

    html = client_in.get("/worklist?who=all").get_data(as_text=True)

    assert "Screening: Safeguarding (safeguarding). Never shown automatically." in html
    assert "Becomes visible to the patient" in html
    assert "unless someone decides" in html
    assert "Discharge summary" in html
    assert ">DS<" not in html


def test_an_addendum_held_because_of_its_original_names_the_rules_that_held_the_original(
    client_in: FlaskClient, handler: MessageHandler, db: Database
) -> None:
    with db.transaction() as session:
        screening.add_starter_rules(session)
    document = _document(handler, db, lines=("Safeguarding referral made.",))
    accounts.ingest(
        handler,
        samples.mdm(
            "T06", control_id="ADD", number="ADD-1", parent="DOC-1", lines=("Seen again.",)
        ),
    )

    html = client_in.get(f"/documents/{document}").get_data(as_text=True)

    assert "screening matched an earlier version: “Safeguarding” (safeguarding)" in html

"""The worklist page: filters from the form, and pages linked by position, not by offset."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples


@pytest.fixture
def client_in(client: FlaskClient, db: Database, sender_token: str) -> FlaskClient:
    accounts.add_clinician(db)
    accounts.sign_in(client, accounts.CLINICIAN)
    return client


def _letter(handler: MessageHandler, number: str, nhs: str, family: str, author: str) -> None:
    accounts.ingest(
        handler,
        samples.build(
            samples.msh(f"M-{number}", "MDM^T02^MDM_T02"),
            samples.segment("EVN", {1: "T02"}),
            samples.pid(nhs, family=family, given="ALEX"),
            samples.pd1(),
            "PV1|1|I",
            samples.txa(number, author=author, title=f"Letter {number}"),
            samples.obx_text("Seen in clinic."),
        ),
    )


@pytest.fixture
def letters(handler: MessageHandler) -> None:
    _letter(handler, "A-1", samples.NHS_NUMBERS[0], "ADAMS", "C1234567^GREY^SAM")
    _letter(handler, "B-1", samples.NHS_NUMBERS[1], "BROWN", "C1234567^GREY^SAM")
    _letter(handler, "C-1", samples.NHS_NUMBERS[2], "CLARKE", "C7654321^BLUE^ROBIN")


def _rows(html: str) -> list[str]:
    return re.findall(r"(?:A|B|C)-1", html.split("<tbody>")[1]) if "<tbody>" in html else []


@pytest.mark.usefixtures("letters")
def test_worklist_shows_my_documents_by_default_and_the_trusts_on_request(
    client_in: FlaskClient,
) -> None:
    mine = client_in.get("/worklist").get_data(as_text=True)
    assert sorted(set(_rows(mine))) == ["A-1", "B-1"]
    everyone = client_in.get("/worklist?who=all").get_data(as_text=True)
    assert sorted(set(_rows(everyone))) == ["A-1", "B-1", "C-1"]
    assert "999 000 0018" in mine  # NHS numbers shown 3-3-4


@pytest.mark.usefixtures("letters")
def test_patient_filter_takes_an_nhs_number_with_spaces_or_a_family_name(
    client_in: FlaskClient,
) -> None:
    by_number = client_in.get("/worklist?who=all&patient=999+000+0026").get_data(as_text=True)
    assert set(_rows(by_number)) == {"B-1"}
    by_name = client_in.get("/worklist?who=all&patient=clar").get_data(as_text=True)
    assert set(_rows(by_name)) == {"C-1"}


@pytest.mark.usefixtures("letters")
def test_invalid_filters_are_explained_next_to_the_field(client_in: FlaskClient) -> None:
    response = client_in.get("/worklist?patient=9990000019&from=2026-12-01&to=2026-11-01")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert "The &#39;to&#39; date must be on or after the &#39;from&#39; date" in html


def test_next_page_link_continues_after_the_last_row(
    client_in: FlaskClient, handler: MessageHandler
) -> None:
    for i in range(27):  # a page holds 25
        _letter(handler, f"D-{i:02d}", samples.NHS_NUMBERS[0], "DAVIES", "C1234567^GREY^SAM")
    first = client_in.get("/worklist").get_data(as_text=True)
    link = re.search(r'href="(/worklist\?[^"]*after=[^"]+)" rel="next"', first)
    assert link, "the first page links to the next"
    second = client_in.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    on_first = set(re.findall(r"D-\d\d", first))
    on_second = set(re.findall(r"D-\d\d", second))
    assert len(on_first) == 25
    assert len(on_second) == 2
    assert not on_first & on_second
    assert 'rel="next"' not in second
    assert "First page" in second


def test_a_broken_page_link_falls_back_to_the_first_page(client_in: FlaskClient) -> None:
    response = client_in.get("/worklist?after=garbage")
    assert response.status_code == 200
    assert "That page link is no longer valid" in response.get_data(as_text=True)

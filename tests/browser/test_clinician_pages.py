"""A clinician in a real browser: sign in, work through the worklist, withhold one document,
release another, read the history. Its screenshots go to a temporary folder, or to the README's
with FLAGGING_SCREENSHOTS=docs/screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from flagging import screening
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import accounts, samples

OTHER_AUTHOR = "C7654321^BLUE^ROBIN^^^DR"


def _letter(
    control_id: str,
    number: str,
    nhs_number: str,
    family: str,
    given: str,
    title: str,
    lines: tuple[str, ...],
    *,
    doc_type: str = "DS^Discharge summary",
    author: str = "C1234567^GREY^SAM^^^DR",
) -> bytes:
    return samples.build(
        samples.msh(control_id, "MDM^T02^MDM_T02"),
        samples.segment("EVN", {1: "T02", 2: "20261124093000"}),
        samples.pid(nhs_number, family=family, given=given),
        samples.pd1(),
        "PV1|1|I",
        samples.txa(number, doc_type=doc_type, author=author, title=title),
        samples.obx_text(*lines),
    )


@pytest.fixture
def ward(db: Database, handler: MessageHandler) -> None:
    """A trust with screening on, a clinician, and a morning's documents."""
    with db.transaction() as session:
        screening.add_starter_rules(session)
    accounts.add_clinician(db)
    documents = [
        _letter(
            "W1",
            "DS-2026-0101",
            samples.NHS_NUMBERS[0],
            "ADEBAYO",
            "GRACE",
            "Discharge summary",
            (
                "Admitted with weight loss and abdominal pain.",
                "CT abdomen: a mass in the head of the pancreas.",
                "Biopsy confirms carcinoma of the pancreas with liver metastases.",
                "Not yet discussed with the patient: oncology will see her and her family "
                "next week.",
                "Discharged home with analgesia. GP: please review pain control.",
            ),
        ),
        _letter(
            "W2",
            "CL-2026-0102",
            samples.NHS_NUMBERS[1],
            "NOWAK",
            "PIOTR",
            "Clinic letter: diabetes review",
            (
                "Seen in diabetes clinic. HbA1c 52 mmol/mol, improved from 61.",
                "Continue metformin 1 g twice daily. Retinal screening up to date.",
                "Review in six months.",
            ),
            doc_type="CL^Clinic letter",
        ),
        _letter(
            "W3",
            "DS-2026-0103",
            samples.NHS_NUMBERS[2],
            "OKAFOR",
            "DANIEL",
            "Discharge summary",
            ("Day-case knee arthroscopy, uneventful.", "Physiotherapy follow-up arranged."),
        ),
        _letter(
            "W4",
            "CL-2026-0104",
            samples.NHS_NUMBERS[3],
            "HUGHES",
            "MEGAN",
            "Clinic letter: cardiology",
            ("Palpitations; Holter monitor normal.", "Discharged from clinic."),
            doc_type="CL^Clinic letter",
            author=OTHER_AUTHOR,
        ),
    ]
    for raw in documents:
        accounts.ingest(handler, raw)


def _sign_in(page: Page) -> None:
    page.goto("/worklist")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill(accounts.CLINICIAN)
    page.get_by_label("Password").fill(accounts.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/worklist$"))


@pytest.mark.usefixtures("ward")
def test_clinician_withholds_one_document_releases_another_and_reads_the_history(
    page: Page, screenshots: Path
) -> None:
    _sign_in(page)
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)  # "my documents": not Dr Blue's letter
    expect(rows.first).to_contain_text("ADEBAYO")  # pending, soonest deadline first
    page.screenshot(path=str(screenshots / "worklist.png"), full_page=True)

    page.get_by_role("link", name=re.compile("ADEBAYO")).click()
    expect(page.get_by_role("heading", name="Discharge summary", exact=True)).to_be_visible()
    expect(page.locator("pre.document-text mark").first).to_contain_text("carcinoma")
    expect(page.get_by_text("999 000 0018").first).to_be_visible()
    page.screenshot(path=str(screenshots / "document.png"), full_page=True)

    page.get_by_label("Not yet discussed with the patient").check()
    page.get_by_label("Note", exact=True).fill("Oncology to discuss with her first.")
    page.get_by_role("button", name="Withhold from patient").click()
    expect(page.get_by_role("status")).to_contain_text("the patient will not see this document")
    expect(page.locator(".status")).to_contain_text("Withheld from patient")

    page.get_by_role("link", name="Back to worklist").click()
    page.get_by_role("link", name=re.compile("NOWAK")).click()
    page.get_by_role("button", name="Release to patient").click()
    expect(page.get_by_role("status")).to_contain_text("the patient can now see this document")
    history = page.locator("ol.timeline li")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("Visible to patient")
    expect(history.first).to_contain_text("By Dr Sam Grey (C1234567)")

    page.get_by_role("link", name="Back to worklist").click()
    page.get_by_label("Status").select_option("withheld")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name=re.compile("ADEBAYO")).click()
    entry = page.locator("ol.timeline li").first
    expect(entry).to_contain_text("Withheld from patient")
    expect(entry).to_contain_text("Reason: Not yet discussed with the patient")
    expect(entry).to_contain_text("Oncology to discuss with her first.")
    expect(entry).to_contain_text("Dr Sam Grey")


@pytest.mark.usefixtures("ward")
def test_every_field_is_labelled_and_the_pages_fit_a_tablet(page: Page) -> None:
    _sign_in(page)
    unlabelled = """() => [
        ...document.querySelectorAll('input:not([type=hidden]), select, textarea')
    ].filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
        .map(e => e.name || e.id)"""
    assert page.evaluate(unlabelled) == []
    page.get_by_role("link", name=re.compile("ADEBAYO")).click()
    assert page.evaluate(unlabelled) == []

    page.set_viewport_size({"width": 768, "height": 1024})
    for path in ("/worklist", page.url):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways on a tablet"


@pytest.mark.usefixtures("ward")
def test_a_decision_can_be_made_with_the_keyboard_alone(page: Page) -> None:
    _sign_in(page)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.get_by_role("link", name=re.compile("OKAFOR")).focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Discharge summary", exact=True)).to_be_visible()
    page.get_by_role("button", name="Release to patient").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Released")


def test_document_text_with_markup_is_shown_as_text_and_never_run(
    page: Page, db: Database, handler: MessageHandler
) -> None:
    accounts.add_clinician(db)
    hostile = "<script>window.injected = 1</script><b>not bold</b> <img src=x onerror=alert(1)>"
    accounts.ingest(
        handler,
        _letter("X1", "DS-X", samples.NHS_NUMBERS[4], "SMITH", "JO", "Discharge", (hostile,)),
    )
    _sign_in(page)
    page.get_by_role("link", name=re.compile("SMITH")).click()
    expect(page.locator("pre.document-text")).to_have_text(hostile)
    assert page.evaluate("window.injected") is None
    assert page.locator("pre.document-text b, pre.document-text img").count() == 0


def _axe_violations(page: Page) -> str:
    """axe-core's report of what violates WCAG on the page as it is now ('' when nothing)."""
    results = Axe().run(page)
    return "" if results.violations_count == 0 else results.generate_report()


@pytest.mark.usefixtures("ward")
@pytest.mark.parametrize("width", [1280, 390])
def test_the_document_page_and_worklist_have_no_axe_violation_on_a_laptop_or_a_phone(
    page: Page, handler: MessageHandler, width: int, screenshots: Path
) -> None:
    # An addendum, so that the versions table has rows to scroll on a phone.
    accounts.ingest(
        handler,
        samples.mdm(
            "T06",
            control_id="W1-ADD",
            number="DS-2026-0101-A1",
            parent="DS-2026-0101",
            nhs_number=samples.NHS_NUMBERS[0],
            lines=("Addendum: oncology clinic booked.",),
        ),
    )
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page)
    assert _axe_violations(page) == ""
    page.get_by_role("link", name=re.compile("ADEBAYO")).click()
    expect(page.get_by_role("heading", name="Discharge summary", exact=True)).to_be_visible()
    assert _axe_violations(page) == ""
    if width == 390:
        page.screenshot(path=str(screenshots / "document-phone.png"), full_page=True)
    # The page never scrolls sideways; a wide table scrolls inside its own frame.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


@pytest.mark.usefixtures("ward")
def test_a_table_wider_than_a_phone_scrolls_in_its_frame_and_is_reached_by_keyboard(
    page: Page,
) -> None:
    page.set_viewport_size({"width": 390, "height": 900})
    _sign_in(page)
    frame = page.get_by_role("region", name="Documents")
    assert frame.evaluate("e => e.scrollWidth > e.clientWidth")
    frame.focus()
    expect(frame).to_be_focused()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('.table-wrap[aria-label=Documents]').scrollLeft > 0"
    )


@pytest.mark.usefixtures("ward")
def test_after_a_validation_error_focus_moves_to_the_error_summary(page: Page) -> None:
    _sign_in(page)
    page.get_by_role("link", name=re.compile("ADEBAYO")).click()
    page.get_by_role("button", name="Withhold from patient").click()  # no reason chosen
    summary = page.locator(".error-summary")
    expect(summary).to_contain_text("Choose why the patient must not see it")
    expect(summary).to_be_focused()


@pytest.mark.usefixtures("ward")
def test_the_two_decisions_are_at_the_top_of_the_page_before_the_text(page: Page) -> None:
    _sign_in(page)
    page.get_by_role("link", name=re.compile("ADEBAYO")).click()
    release = page.get_by_role("button", name="Release to patient")
    withhold = page.get_by_role("link", name="Withhold from patient")
    text = page.locator("pre.document-text")
    for action in (release, withhold):
        box, text_box = action.bounding_box(), text.bounding_box()
        assert box is not None
        assert text_box is not None
        assert box["y"] < text_box["y"]
        assert box["y"] < 800  # within the first screen of a laptop
    withhold.click()
    expect(page.get_by_role("heading", name="Withhold from the patient")).to_be_in_viewport()

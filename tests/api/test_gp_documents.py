"""A document in each representation: metadata, annotated HL7 v2, FHIR R4, the rendition."""

from __future__ import annotations

import base64
import hashlib

from fhir.resources.R4B.documentreference import DocumentReference
from flask.testing import FlaskClient
from hl7apy.parser import parse_message

from flagging.models import Visibility
from flagging.storage.engine import Database
from hl7 import er7
from tests import samples
from tests.api.conftest import GPWorld
from tests.gp_helpers import decide

BASE = f"/gp/v1/practices/{samples.PRACTICE}/documents"
NOPAT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def _auth(world: GPWorld) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token}"}


def _codes(labels: list[dict[str, str]]) -> set[tuple[str, str]]:
    return {(label["system"], label["code"]) for label in labels}


def test_metadata_has_the_current_visibility_and_links(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    response = client.get(f"{BASE}/{gp_world.mine}", headers=_auth(gp_world))

    assert response.status_code == 200
    data = response.json
    assert data is not None
    assert (data["id"], data["version"], data["latest_version"]) == (gp_world.mine, 2, 2)
    assert (data["document_number"], data["version_number"]) == ("MINE-1", "MINE-2")
    assert data["status"] == "current"
    assert data["patient"]["nhs_number"] == samples.NHS_NUMBERS[0]
    assert data["custodian"]["ods_code"] == samples.SENDER
    assert data["visibility"] == {
        "status": "withheld",
        "nopat": True,
        "reason": "serious-harm",
        "reason_text": "Likely to cause serious harm",
        "source": "clinician",
        "decided_by": "Dr Sam Grey",
        "decided_at": data["visibility"]["decided_at"],
        "withhold_until": None,
    }
    assert data["links"]["fhir"] == f"{BASE}/{gp_world.mine}/fhir"
    older = client.get(f"{BASE}/{gp_world.mine}?version=1", headers=_auth(gp_world)).json
    assert older is not None
    assert older["version"] == 1
    # The decision on version 2 applies to every version: version 1 no longer waits for one.
    assert older["visibility"]["status"] == "withheld"


def test_fhir_document_reference_validates_and_is_labelled_nopat_while_withheld(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    response = client.get(f"{BASE}/{gp_world.mine}/fhir", headers=_auth(gp_world))

    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    data = response.json
    assert data is not None
    DocumentReference.model_validate(data)  # raises if it is not a valid DocumentReference
    assert data["resourceType"] == "DocumentReference"
    assert _codes(data["meta"]["security"]) == {(CONFIDENTIALITY, "R"), (NOPAT, "NOPAT")}
    assert {
        (c["system"], c["code"]) for label in data["securityLabel"] for c in label["coding"]
    } == {
        (CONFIDENTIALITY, "R"),
        (NOPAT, "NOPAT"),
    }
    assert data["masterIdentifier"]["system"] == "urn:ietf:rfc:3986"
    assert data["masterIdentifier"]["value"].startswith("urn:uuid:")
    assert data["relatesTo"][0]["code"] == "replaces"
    assert data["relatesTo"][0]["target"]["reference"] == f"DocumentReference/{gp_world.mine}-1"
    assert data["subject"]["identifier"] == {
        "system": "https://fhir.nhs.uk/Id/nhs-number",
        "value": samples.NHS_NUMBERS[0],
    }
    assert data["custodian"]["identifier"] == {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code",
        "value": samples.SENDER,
    }
    assert data["author"][0]["identifier"]["value"] == "C1234567"
    assert data["type"]["coding"][0]["code"] == "DS"
    assert data["status"] == "current"
    assert data["date"]
    attachment = data["content"][0]["attachment"]
    content = base64.b64decode(attachment["data"])
    assert content == b"Discharged home.\nFollow up in clinic."
    assert attachment["contentType"] == "text/plain; charset=utf-8"
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(content).digest()  # noqa: S324


def test_fhir_for_a_visible_document_carries_no_nopat(
    client: FlaskClient, gp_world: GPWorld, db: Database
) -> None:
    decide(db, gp_world.mine, Visibility.VISIBLE)
    data = client.get(f"{BASE}/{gp_world.mine}/fhir", headers=_auth(gp_world)).json
    assert data is not None
    DocumentReference.model_validate(data)
    assert _codes(data["meta"]["security"]) == {(CONFIDENTIALITY, "N")}
    older = client.get(f"{BASE}/{gp_world.mine}/fhir?version=1", headers=_auth(gp_world)).json
    assert older is not None
    assert older["status"] == "superseded"
    assert "relatesTo" not in older


def test_fhir_for_a_pdf_report_has_the_pdf_as_its_attachment(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    data = client.get(f"{BASE}/{gp_world.pdf}/fhir", headers=_auth(gp_world)).json
    assert data is not None
    DocumentReference.model_validate(data)
    attachment = data["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == samples.TINY_PDF
    assert _codes(data["meta"]["security"]) == {(CONFIDENTIALITY, "R"), (NOPAT, "NOPAT")}


def test_annotated_hl7_parses_again_and_carries_the_flag(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    response = client.get(f"{BASE}/{gp_world.mine}/hl7v2", headers=_auth(gp_world))

    assert response.status_code == 200
    assert response.mimetype == "application/hl7-v2"
    text = response.data.decode()
    message = parse_message(text)
    assert message.msh.msh_6.to_er7() == samples.PRACTICE
    assert message.msh.msh_10.value not in ("M1", "M2")
    segments = er7.parse(response.data, "utf-8").segments
    zfl = next(s for s in segments if s.name == "ZFL")
    assert (zfl.field(2), zfl.field(8)) == ("W", "clinician")
    assert zfl.field(3).startswith("NOPAT^")
    assert next(s for s in segments if s.name == "TXA").field(12) == "MINE-2"
    # A new MSH-10 for every copy fetched.
    again = client.get(f"{BASE}/{gp_world.mine}/hl7v2", headers=_auth(gp_world))
    assert er7.parse(again.data, "utf-8").msh.field(10) != segments[0].field(10)


def test_rendition_is_served_with_its_media_type(client: FlaskClient, gp_world: GPWorld) -> None:
    text = client.get(f"{BASE}/{gp_world.mine}/content", headers=_auth(gp_world))
    pdf = client.get(f"{BASE}/{gp_world.pdf}/content", headers=_auth(gp_world))

    assert text.status_code == 200
    assert text.content_type == "text/plain; charset=utf-8"
    assert text.data == b"Discharged home.\nFollow up in clinic."
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data == samples.TINY_PDF


def test_version_out_of_range_is_400_and_unknown_version_404(
    client: FlaskClient, gp_world: GPWorld
) -> None:
    for suffix in ("", "/hl7v2", "/fhir", "/content"):
        assert (
            client.get(f"{BASE}/{gp_world.mine}{suffix}?version=0", headers=_auth(gp_world))
        ).status_code == 400
        assert (
            client.get(f"{BASE}/{gp_world.mine}{suffix}?version=7", headers=_auth(gp_world))
        ).status_code == 404

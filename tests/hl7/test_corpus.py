"""Every public corpus message over one MLLP connection: one well-formed ACK each, right code.

The expected code is worked out here from the manifest and MSH, independently of the parser:
types other than MDM T01-T11 and ORU^R01, versions before 2.3 and processing ids we do not
accept are AR; the MDM and ORU messages are all from outside the NHS, so they carry no NHS
number and must be AE. Every sender is registered first, so no answer is an unknown-sender AR.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hl7apy import SUPPORTED_LIBRARIES
from hl7apy.parser import parse_message
from sqlalchemy import select

from flagging import organisations
from flagging.models import InboundMessage
from flagging.storage.engine import Database
from hl7.client import MLLPClient
from hl7.listener import MLLPListener
from tests import samples

pytestmark = pytest.mark.skipif(
    not samples.corpus_files(), reason="../shared/corpus/public is not beside the project"
)

MDM_EVENTS = {f"T{n:02d}" for n in range(1, 12)}


def _msh(raw: bytes) -> list[str]:
    text = raw.lstrip(b"\xef\xbb\xbf").decode("latin-1")
    line = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")[0]
    return line.split(line[3])  # [MSH, MSH-2, MSH-3, ...]: index n is MSH-(n+1)


def _manifest() -> dict[str, dict[str, str]]:
    with (samples.CORPUS / "manifest.tsv").open(newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def _expected_code(row: dict[str, str], msh: list[str]) -> str:
    component = msh[1][0]
    kind, _, event = row["message_type"].replace(component, "^").partition("^")
    event = event.split("^")[0]
    supported = (kind == "MDM" and event in MDM_EVENTS) or (kind == "ORU" and event == "R01")
    version = row["version"]
    too_old = not version or tuple(int(p) for p in version.split(".")[:2]) < (2, 3)
    processing = msh[10].split(component)[0] if len(msh) > 10 else ""
    code = "AR" if not supported or too_old or processing not in ("P", "T", "D") else "AE"
    accept_ack = msh[14] if len(msh) > 14 else ""
    app_ack = msh[15] if len(msh) > 15 else ""
    if (accept_ack or app_ack) and (accept_ack or "AL") in ("AL", "ER"):
        return {"AE": "CE", "AR": "CR"}[code]  # enhanced mode: a commit acknowledgement
    return code


def _facility(msh: list[str]) -> str:
    parts = msh[3].split(msh[1][0]) if len(msh) > 3 else [""]
    return (parts[0] or (parts[1] if len(parts) > 1 else "")).strip()


def test_every_corpus_message_gets_one_well_formed_ack_on_one_connection(
    listener: MLLPListener, db: Database
) -> None:
    manifest = _manifest()
    files = samples.corpus_files()
    with db.transaction() as session:
        for facility in sorted({_facility(_msh(p.read_bytes())) for p in files} - {""}):
            organisations.add_sender(session, facility, facility)

    results: list[tuple[Path, str, str, bytes]] = []
    with MLLPClient(*listener.address) as client:
        for path in files:
            raw = path.read_bytes()
            msh = _msh(raw)
            expected = _expected_code(manifest[path.name], msh)
            ack = client.send(raw)
            results.append((path, expected, msh[9] if len(msh) > 9 else "", ack))

    wrong = []
    for path, expected, control_id, ack in results:
        text = ack.decode("latin-1")
        version = _msh(ack)[11]
        if version not in SUPPORTED_LIBRARIES:
            # The ACK echoes the message's version (2.6.1, empty); hl7apy knows only real ones.
            text = text.replace(f"|{version}\r", "|2.5\r", 1)
        parsed = parse_message(text, find_groups=False)
        msa_code = parsed.msa.msa_1.value
        msa_control = parsed.msa.msa_2.value or ""
        if (msa_code, msa_control) != (expected, control_id):
            wrong.append(f"{path.name}: got {msa_code} {msa_control!r}, want {expected}")
        if msa_code not in ("AA", "CA"):
            assert "ERR" in [s.name for s in parsed.children], path.name
    assert wrong == []

    with db.transaction() as session:
        rows = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
    assert len(rows) == len(files)
    for row, (path, expected, _, ack) in zip(rows, results, strict=True):
        outcome = "A" + expected[1]  # the outcome is stored as AE/AR in either mode
        assert row.ack_code == outcome, path.name
        assert row.ack == ack
        assert row.raw == path.read_bytes()
        assert row.outcome == ("quarantined" if outcome == "AE" else "rejected")

"""hl7apy at the edges: `flagging messages validate` on the public corpus, and the message
inspector that names every segment and field (CLI `messages show --fields`)."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from config import Settings
from flagging.storage.engine import Database
from hl7 import inspect
from hl7.handler import MessageHandler
from tests import samples

pytestmark = pytest.mark.skipif(
    not samples.corpus_files(), reason="../shared/corpus/public is not beside the project"
)

CLEAN = samples.CORPUS / "069_ORU-R01_2.3.1.hl7"  # no structural errors, table warnings only
BROKEN = samples.CORPUS / "042_ORU-R01_2.5.1.hl7"  # PID without its required PID-3
MDM = samples.CORPUS / "143_MDM-T02_2.5.1.hl7"
ORU = samples.CORPUS / "007_ORU-R01_2.5.1.hl7"


def test_a_clean_corpus_message_passes_validation(capsys: pytest.CaptureFixture[str]) -> None:
    assert [i for i in inspect.validate(CLEAN.read_bytes()) if i.severity == "error"] == []
    assert main(["messages", "validate", str(CLEAN)]) == 0
    assert ": ok (0 errors" in capsys.readouterr().out


def test_a_broken_corpus_message_names_segment_field_and_hl7_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    errors = [i for i in inspect.validate(BROKEN.read_bytes()) if i.severity == "error"]
    assert [(i.location, i.name) for i in errors] == [("PID-3", "Patient Identifier List")]
    assert main(["messages", "validate", str(CLEAN), str(BROKEN), "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == [str(CLEAN), str(BROKEN)]
    [error] = [i for i in results[1]["issues"] if i["severity"] == "error"]
    assert error["location"] == "PID-3"
    assert "Missing required child" in error["text"]


def test_validation_of_bytes_that_are_not_hl7_is_a_clear_error(tmp_path) -> None:
    junk = tmp_path / "junk.hl7"
    junk.write_bytes(b"this is not a message")
    assert main(["messages", "validate", str(junk)]) == 1
    [issue] = inspect.validate(junk.read_bytes())
    assert issue.severity == "error"


def test_the_inspector_labels_every_field_of_an_mdm_with_its_hl7_name() -> None:
    views = inspect.inspect(MDM.read_bytes())
    assert [v.code for v in views][:2] == ["MSH", "EVN"]
    by_location = {f.location: f for v in views for f in v.fields}
    assert by_location["MSH-9"].name == "Message Type"
    assert by_location["MSH-9"].value.startswith("MDM^T02")
    assert by_location["TXA-12"].name == "Unique Document Number"
    assert by_location["PID-5"].name == "Patient Name"
    txa = next(v for v in views if v.code == "TXA")
    assert txa.name == "Transcription Document Header"
    assert all(f.name for v in views for f in v.fields), "a standard field without a name"


def test_the_inspector_labels_an_oru_and_its_repetitions(
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    handler: MessageHandler,
) -> None:
    views = inspect.inspect(ORU.read_bytes())
    by_location = {f.location: f for v in views for f in v.fields}
    assert by_location["OBR-4"].name == "Universal Service Identifier"
    assert by_location["OBX-5"].name == "Observation Value"
    assert any("[" in location for location in by_location), "no repetition listed"
    # The same through `messages show --fields` on a stored message.
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")
    reply = handler.handle(samples.oru(control_id="O-1"), transport="mllp")
    capsys.readouterr()
    assert main(["messages", "show", str(reply.message_id), "--fields", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    obr = next(s for s in listing if s["segment"] == "OBR")
    assert obr["name"] == "Observation Request"
    [filler] = [f for f in obr["fields"] if f["location"] == "OBR-3"]
    assert filler["name"] == "Filler Order Number"
    assert filler["value"]

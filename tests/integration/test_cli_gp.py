"""The GP commands: tokens, practice feed settings, and `gp-poll` against a served app."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cli.main import main
from cli.wiring import Services, web_app
from config import Settings
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from tests import samples
from tests.gp_helpers import send


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


@pytest.fixture
def base_url(db: Database, settings: Settings, handler: MessageHandler) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, web_app(Services(settings, db, handler)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _token(out: str) -> str:
    found = re.search(r"bearer token \(shown once, keep it safe\): (\S+)", out)
    assert found, out
    return found.group(1)


def test_token_is_issued_listed_without_the_secret_and_revoked(
    capsys: pytest.CaptureFixture[str], handler: MessageHandler
) -> None:
    assert main(["practices", "token", samples.PRACTICE, "--name", "EMIS"]) == 0
    token = _token(capsys.readouterr().out)

    assert main(["practices", "tokens", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["practices"], t["revoked_at"]) for t in listed] == [
        ("EMIS", samples.PRACTICE, None)
    ]
    assert token not in json.dumps(listed)

    assert main(["practices", "revoke-token", str(listed[0]["id"])]) == 0
    assert f"GP token {listed[0]['id']} revoked" in capsys.readouterr().out
    assert main(["practices", "tokens", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is not None
    assert main(["practices", "token", "Z99999"]) == 1
    assert "no practice Z99999" in capsys.readouterr().err


def test_practice_feed_mode_and_push_are_set_and_listed(
    capsys: pytest.CaptureFixture[str], handler: MessageHandler
) -> None:
    argv = ["practices", "set", samples.PRACTICE, "--feed-mode", "decided"]
    assert main([*argv, "--push-host", "127.0.0.1", "--push-port", "2576"]) == 0
    assert "feed mode decided, push 127.0.0.1:2576" in capsys.readouterr().out
    assert main(["practices", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)[0]
    assert (listed["feed_mode"], listed["push"], listed["push_failures"]) == (
        "decided",
        "127.0.0.1:2576 at 0",
        0,
    )
    assert main(["practices", "set", samples.PRACTICE, "--no-push"]) == 0
    assert "push off" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["practices", "set", samples.PRACTICE, "--feed-mode", "never"])


def test_gp_poll_files_documents_and_exits_non_zero_on_a_bad_token(
    capsys: pytest.CaptureFixture[str], handler: MessageHandler, base_url: str, tmp_path: Path
) -> None:
    send(handler, samples.mdm(control_id="M1", number="D1"))
    send(handler, samples.oru(control_id="O1", number="F1", observations=samples.obx_pdf()))
    assert main(["practices", "token", samples.PRACTICE]) == 0
    token = _token(capsys.readouterr().out)
    argv = ["gp-poll", "--url", base_url, "--practice", samples.PRACTICE, "--out", str(tmp_path)]

    assert main([*argv, "--token", token, "--once"]) == 0
    assert "2 events filed; position 2" in capsys.readouterr().out
    folders = sorted((tmp_path / "documents").iterdir())
    assert [sorted(p.name for p in f.iterdir()) for f in folders] == [
        ["document.json", "versions", "visibility.json"],
        ["document.json", "versions", "visibility.json"],
    ]
    assert [sorted(p.name for p in (f / "versions" / "1").iterdir()) for f in folders] == [
        ["content.txt", "version.json", "visibility.json"],
        ["content.pdf", "version.json", "visibility.json"],
    ]
    assert json.loads((folders[0] / "visibility.json").read_text())["status"] == "pending"
    assert main([*argv, "--token", token, "--once"]) == 0
    assert "0 events filed; position 2" in capsys.readouterr().out

    assert main([*argv, "--token", "wrong", "--once"]) == 1
    assert "HTTP 401" in capsys.readouterr().err

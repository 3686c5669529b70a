"""The `flagging` command line, run in-process against the test database."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from cli.commands.common import CommandError
from cli.commands.service import check_mllp_exposure
from cli.main import main
from config import Settings
from flagging import bindings, organisations
from flagging.storage.engine import Database
from hl7.handler import MessageHandler
from hl7.listener import MLLPListener
from tests import samples
from tests.pki import CertificateAuthority


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "test")
    monkeypatch.setenv("FLAGGING_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLAGGING_INSTANCE_PATH", str(settings.instance_path))
    monkeypatch.setenv("FLAGGING_SECRET_KEY", "test-secret")


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_senders_and_practices_are_registered_and_listed_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["senders", "add", "rh8", "--name", "Royal Devon"]) == 0
    out = capsys.readouterr().out
    assert "token (shown once" in out
    assert main(["practices", "add", "A81001", "--name", "The Surgery"]) == 0

    senders = _json(capsys, "senders", "list")
    practices = _json(capsys, "practices", "list")
    assert [(s["ods_code"], s["name"]) for s in senders] == [("RH8", "Royal Devon")]
    assert [p["ods_code"] for p in practices] == ["A81001"]
    assert "token" not in json.dumps(senders)


def test_failures_exit_non_zero_with_a_one_line_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["practices", "add", "NOTACODE"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("flagging: ")
    assert "\n" not in err
    assert main(["documents", "show", "999"]) == 1
    assert "no document 999" in capsys.readouterr().err


def test_send_prints_each_ack_and_the_document_is_then_listed(
    capsys: pytest.CaptureFixture[str], listener: MLLPListener, sender_token: str, tmp_path: Path
) -> None:
    path = tmp_path / "two.hl7"
    path.write_bytes(
        samples.mdm(control_id="C1", number="D1") + samples.mdm(control_id="C2", number="D2")
    )
    host, port = listener.address
    assert main(["send", str(path), "--host", host, "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert out.count(": AA") == 2
    assert "MSA|AA|C1" in out
    assert "MSA|AA|C2" in out

    documents = _json(capsys, "documents", "list")
    assert sorted(d["document_number"] for d in documents) == ["D1", "D2"]
    shown = _json(capsys, "documents", "show", str(documents[0]["id"]))
    assert shown["nhs_number"] == "999 000 0018"
    assert [v["event"] for v in shown["versions"]] == ["T02"]


def test_send_exits_non_zero_when_a_message_is_not_accepted(
    capsys: pytest.CaptureFixture[str], listener: MLLPListener, sender_token: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.hl7"
    path.write_bytes(samples.mdm(nhs_number=""))
    host, port = listener.address
    assert main(["send", str(path), "--host", host, "--port", str(port)]) == 1
    assert ": AE" in capsys.readouterr().out


def test_quarantined_message_is_listed_shown_and_reprocessed(
    capsys: pytest.CaptureFixture[str], listener: MLLPListener, sender_token: str, tmp_path: Path
) -> None:
    path = tmp_path / "unknown-sender.hl7"
    path.write_bytes(samples.mdm(sender="RNEW", control_id="Q1"))
    host, port = listener.address
    main(["send", str(path), "--host", host, "--port", str(port)])

    [message] = _json(capsys, "messages", "list", "--outcome", "rejected")
    assert message["error"].startswith("204")
    shown = _json(capsys, "messages", "show", str(message["id"]))
    assert "MSH|" in shown["raw"]

    assert main(["messages", "reprocess", str(message["id"])]) == 1  # still unregistered
    assert main(["senders", "add", "RNEW"]) == 0
    capsys.readouterr()
    assert main(["messages", "reprocess", str(message["id"])]) == 0
    assert ": AA" in capsys.readouterr().out
    assert len(_json(capsys, "documents", "list")) == 1


def test_unroutable_document_is_routed_to_a_practice(
    capsys: pytest.CaptureFixture[str], listener: MLLPListener, sender_token: str, tmp_path: Path
) -> None:
    path = tmp_path / "v81999.hl7"
    path.write_bytes(samples.mdm(practice="V81999"))
    host, port = listener.address
    main(["send", str(path), "--host", host, "--port", str(port)])
    [document] = _json(capsys, "documents", "list", "--unroutable")
    assert main(["documents", "route", str(document["id"]), samples.PRACTICE]) == 0
    assert _json(capsys, "documents", "list", "--unroutable") == []


def test_demo_loads_the_examples_and_every_one_is_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    examples = sorted(p.name for p in samples.EXAMPLES.glob("*.hl7"))
    answers = [line.split(": ", 1) for line in out.splitlines() if ".hl7: " in line]
    assert [name for name, _ in answers] == examples
    assert [answer.split()[0] for _, answer in answers] == ["AA"] * len(examples)
    documents = _json(capsys, "documents", "list")
    assert len(documents) == len(examples) - 1  # the addendum joins its parent's thread


def test_senders_set_binds_networks_and_certificates_shown_by_senders_list(
    capsys: pytest.CaptureFixture[str], sender_token: str
) -> None:
    fingerprint = ":".join(["AB"] * 32)
    argv = ["senders", "set", samples.SENDER, "--allow-network", "192.0.2.0/24", "2001:db8::/32"]
    assert main([*argv, "--certificate", fingerprint, "CN=rxx-engine,O=Test Trust"]) == 0
    assert "MLLP from networks 192.0.2.0/24, 2001:db8::/32" in capsys.readouterr().out
    [listed] = _json(capsys, "senders", "list")  # type: ignore[misc]
    assert listed["networks"] == ["192.0.2.0/24", "2001:db8::/32"]
    assert listed["certificates"] == ["CN=rxx-engine,O=Test Trust", "ab" * 32]
    assert main(["senders", "list"]) == 0
    assert "192.0.2.0/24 2001:db8::/32" in capsys.readouterr().out

    assert main(["senders", "set", samples.SENDER, "--clear-networks"]) == 0
    [listed] = _json(capsys, "senders", "list")  # type: ignore[misc]
    assert (listed["networks"], len(listed["certificates"])) == ([], 2)
    assert main(["senders", "set", samples.SENDER, "--clear-certificates"]) == 0
    assert "may send only over loopback" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["senders", "set", samples.SENDER], "say what to set"),
        (["senders", "set", "RNONE", "--clear-networks"], "no sender RNONE"),
        (["senders", "set", samples.SENDER, "--allow-network", "10.0.0.1/8"], "host bits"),
        (["senders", "set", samples.SENDER, "--certificate", "O=NHS"], "must name its CN"),
    ],
)
def test_senders_set_refuses_what_it_cannot_use_in_one_line(
    capsys: pytest.CaptureFixture[str], sender_token: str, argv: list[str], reason: str
) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert reason in err
    assert "\n" not in err


def test_production_refuses_an_mllp_listener_any_unbound_sender_could_be_spoofed_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sender_token: str
) -> None:
    monkeypatch.setenv("FLAGGING_ENV", "production")
    monkeypatch.setenv("FLAGGING_SECRET_KEY", secrets.token_hex(32))
    monkeypatch.setenv("FLAGGING_MLLP_HOST", "0.0.0.0")  # noqa: S104 (refused before binding)
    monkeypatch.setenv("FLAGGING_MLLP_PORT", "0")
    assert main(["mllp"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("flagging: refusing to listen for MLLP on 0.0.0.0")
    assert f"senders {samples.SENDER} have no network or certificate binding" in err


def test_production_listens_once_every_sender_is_bound_or_certificates_are_required(
    settings: Settings, db: Database, sender_token: str
) -> None:
    production = replace(settings, env="production")
    with pytest.raises(CommandError):
        check_mllp_exposure(production, "10.0.0.5")
    check_mllp_exposure(production, "127.0.0.1")  # loopback: only this machine can connect
    check_mllp_exposure(settings, "10.0.0.5")  # development
    check_mllp_exposure(replace(production, mllp_tls_client_ca="/ca.pem"), "10.0.0.5")
    with db.transaction() as session:
        sender = organisations.find_sender(session, samples.SENDER)
        assert sender is not None
        bindings.set_bindings(session, sender.id, networks=["10.1.0.0/16"])
    check_mllp_exposure(production, "10.0.0.5")


def test_send_speaks_mutual_tls_with_a_ca_a_client_certificate_and_a_key(
    capsys: pytest.CaptureFixture[str], handler: MessageHandler, tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    ours = ca.issue("rxx-engine")
    server = MLLPListener(handler, port=0, ssl_context=ca.server_context(ca.issue("localhost")))
    server.start()
    try:
        path = tmp_path / "one.hl7"
        path.write_bytes(samples.mdm(control_id="TLS1"))
        target = ["--host", "localhost", "--port", str(server.address[1]), "--ca", str(ca.cert)]
        assert main(["send", str(path), *target]) == 1  # no client certificate: refused
        assert "cannot talk to localhost" in capsys.readouterr().err
        certificate = ["--cert", str(ours.cert), "--key", str(ours.key)]
        assert main(["send", str(path), *target, *certificate]) == 0
        assert "MSA|AA|TLS1" in capsys.readouterr().out
        assert main(["send", str(path), *target, "--cert", str(ours.cert)]) == 1
        assert "--cert and --key go together" in capsys.readouterr().err
    finally:
        server.stop()


def test_practices_set_turns_tls_on_for_the_push(
    capsys: pytest.CaptureFixture[str], sender_token: str
) -> None:
    argv = ["practices", "set", samples.PRACTICE, "--push-host", "gp.example"]
    assert main([*argv, "--push-port", "2575", "--push-tls"]) == 0
    assert "push gp.example:2575 over TLS" in capsys.readouterr().out
    [practice] = _json(capsys, "practices", "list")  # type: ignore[misc]
    assert practice["push_tls"] is True
    assert main(["practices", "set", samples.PRACTICE, "--no-push-tls"]) == 0
    [practice] = _json(capsys, "practices", "list")  # type: ignore[misc]
    assert practice["push_tls"] is False

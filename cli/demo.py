"""Demo data for a newcomer: a demo trust and practice, and the sample messages in examples/."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from cli.wiring import Services
from config import ConfigError
from flagging import organisations, screening, users
from flagging.errors import Conflict
from flagging.models import Sender

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_TRUST = "R99"
DEMO_PRACTICE = "A99999"
DEMO_CLINICIAN = "demo.clinician"
DEMO_CLINICIAN_CODE = "C1234567"  # the author (TXA-9) of the discharge summary examples
DEMO_ADMIN = "demo.admin"


def load(services: Services) -> list[str]:
    """Register the demo organisations (once) and ingest every example; return what happened."""
    if services.settings.is_production:
        raise ConfigError("demo data is refused in production (FLAGGING_ENV=production)")
    lines = []
    with services.db.transaction() as session:
        if organisations.find_sender(session, DEMO_TRUST, "DEMO-EPR") is None:
            organisations.add_sender(session, DEMO_TRUST, "Demo NHS Trust")
            lines.append(f"registered demo sender {DEMO_TRUST}")
        try:
            with session.begin_nested():
                organisations.add_practice(session, DEMO_PRACTICE, "Demo Surgery")
            lines.append(f"registered demo practice {DEMO_PRACTICE}")
        except Conflict:
            pass
        sender = organisations.find_sender(session, DEMO_TRUST)
        added = screening.add_starter_rules(session)
        if added:
            lines.append(f"added {added} starter screening rules")
        for username, name, role, code in (
            (DEMO_CLINICIAN, "Dr Sam Grey", "clinician", DEMO_CLINICIAN_CODE),
            (DEMO_ADMIN, "Demo Administrator", "admin", ""),
        ):
            if users.find_user(session, username) is None:
                password = users.new_password()
                users.add_user(
                    session,
                    username=username,
                    display_name=name,
                    role=role,
                    password=password,
                    sender_id=sender.id if sender and role == "clinician" else None,
                    clinician_code=code,
                )
                lines.append(f"web sign-in {username} ({role}), password: {password}")
    for path in sorted(EXAMPLES.glob("*.hl7")):
        reply = services.handler.handle(path.read_bytes(), transport="file", peer=path.name)
        lines.append(f"{path.name}: {reply.code} (message {reply.message_id})")
    return lines


def load_if_empty(services: Services) -> None:
    """Load the demo into a database that has no senders yet; leave a used one alone."""
    with services.db.transaction() as session:
        senders = session.scalar(select(func.count()).select_from(Sender))
    if not senders:
        for line in load(services):
            print(f"demo: {line}")

"""The MLLP side of the push job (flagging/push_job.py): a link to a practice's endpoint.

Each delivery is the original message annotated for the practice (hl7/annotate.py), sent on one
connection per run, and accepted only when MSA-1 is AA or CA and MSA-2 the MSH-10 sent.
Anything else (no connection, a timeout, AE, AR, a wrong MSA-2) is DeliveryFailed, and the job
tries the same event again after a backoff.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

from flagging.push_job import DeliveryFailed
from flagging.push_queue import Delivery, PushTarget
from hl7 import er7
from hl7.annotate import annotate
from hl7.client import MLLPClient
from hl7.errors import HL7Error

ACCEPTED = ("AA", "CA")


class PushRejected(HL7Error):
    """The practice's system did not accept a delivery."""


@dataclass(frozen=True)
class PushSettings:
    # Seconds to connect, and to wait for each acknowledgement.
    timeout: float = 30.0
    fallback_charset: str = "windows-1252"
    # For practices pushed to over TLS: our CAs and client certificate (hl7.client.tls_context).
    # None: the system's CAs and no client certificate.
    ssl_context: ssl.SSLContext | None = None


def check_ack(ack: bytes, control_id: str, fallback_charset: str) -> str:
    """The MSA-1 code of an ACK that accepts the message `control_id`; raises PushRejected."""
    try:
        message = er7.parse(ack, fallback_charset)
    except HL7Error as exc:
        raise PushRejected(f"unreadable acknowledgement: {exc}") from None
    msa = message.first("MSA")
    if msa is None:
        raise PushRejected("the acknowledgement has no MSA segment")
    code = message.component(msa.field(1), 1).upper()
    acked = message.unescape(msa.field(2).strip())
    if code not in ACCEPTED:
        err = message.first("ERR")
        detail = message.unescape(msa.field(3).strip()) or (
            message.unescape(err.field(8).strip()) if err is not None else ""
        )
        raise PushRejected(f"answered {code or '(no MSA-1)'}" + (f": {detail}" if detail else ""))
    if acked != control_id:
        raise PushRejected(f"MSA-2 {acked!r} does not acknowledge MSH-10 {control_id!r}")
    return code


ClientFactory = Callable[[str, int, float, ssl.SSLContext | None], MLLPClient]


def _connect(host: str, port: int, timeout: float, context: ssl.SSLContext | None) -> MLLPClient:
    return MLLPClient(host, port, timeout=timeout, ssl_context=context)


class MLLPPush:
    """Opens MLLP links to practices' endpoints (the push job's `Opener`)."""

    def __init__(self, settings: PushSettings, connect: ClientFactory = _connect) -> None:
        self.settings = settings
        self._connect = connect

    def __call__(self, target: PushTarget) -> _MLLPLink:
        context = None
        if target.tls:
            context = self.settings.ssl_context or ssl.create_default_context()
        try:
            client = self._connect(target.host, target.port, self.settings.timeout, context)
        except OSError as exc:  # ssl.SSLError too: a failed handshake
            raise DeliveryFailed(f"cannot connect to {target.host}:{target.port}: {exc}") from None
        return _MLLPLink(client, self.settings.fallback_charset)


class _MLLPLink:
    def __init__(self, client: MLLPClient, fallback_charset: str) -> None:
        self._client = client
        self._fallback_charset = fallback_charset

    def send(self, delivery: Delivery) -> None:
        message = annotate(
            delivery.raw, delivery.annotation, fallback_charset=self._fallback_charset
        )
        try:
            ack = self._client.send(message)
            check_ack(ack, delivery.annotation.control_id, self._fallback_charset)
        except (OSError, HL7Error) as exc:
            raise DeliveryFailed(str(exc) or type(exc).__name__) from None

    def close(self) -> None:
        self._client.close()

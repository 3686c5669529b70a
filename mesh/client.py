"""mesh-client, configured from our settings, and its failures sorted into the two kinds the
channel treats differently: MESH refused this message (stop the practice's channel) or MESH
could not be reached or was not able to answer (retry later)."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from mesh_client import MeshClient, MeshError

from config import Settings

FHIR_JSON = "application/fhir+json"


class MeshFailure(Exception):
    """Sending or reading through MESH did not work."""


class MeshUnavailable(MeshFailure):
    """MESH could not be reached, timed out, answered 5xx or asked us to slow down (429):
    the same message is tried again later."""


class MeshRejected(MeshFailure):
    """MESH refused the message itself, with a MESH error code (an unregistered recipient
    mailbox, a workflow the mailbox may not receive...): sending it again cannot help."""


@dataclass(frozen=True)
class MeshConfig:
    url: str
    mailbox: str
    password: str
    shared_key: str
    cert: str = ""
    key: str = ""
    ca_cert: str = ""
    timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MeshConfig | None:
        """The configuration, or None when MESH is not configured (no mailbox of our own)."""
        if not settings.mesh_mailbox:
            return None
        return cls(
            settings.mesh_url,
            settings.mesh_mailbox,
            settings.mesh_password,
            settings.mesh_shared_key,
            settings.mesh_cert,
            settings.mesh_key,
            settings.mesh_ca_cert,
        )


def connect(config: MeshConfig) -> MeshClient:
    """A client for our mailbox, with the handshake done, so that a wrong password, key or
    certificate shows as MESH being unavailable to us, not as a practice's message refused."""
    client = MeshClient(
        config.url,
        config.mailbox,
        config.password,
        shared_key=config.shared_key.encode(),
        cert=(config.cert, config.key) if config.cert else None,
        verify=config.ca_cert or None,
        # No retries inside the client: the channel retries with its own backoff, in order.
        max_retries=0,
        timeout=config.timeout,
        application_name="flagging",
    )
    try:
        client.handshake()
    except (requests.RequestException, OSError) as exc:
        client.close()
        raise MeshUnavailable(f"cannot sign in to MESH mailbox {config.mailbox}: {exc}") from None
    return client


def send(
    client: MeshClient, mailbox: str, workflow: str, body: bytes, local_id: str, subject: str
) -> str:
    """Send one message; returns the message id MESH gave it."""
    try:
        return client.send_message(
            mailbox,
            body,
            workflow_id=workflow,
            local_id=local_id,
            subject=subject,
            content_type=FHIR_JSON,
        )
    except MeshError as exc:
        code, text = _mesh_error(exc)
        if code:
            raise MeshRejected(f"MESH error {code}: {text}") from None
        raise MeshUnavailable(f"MESH did not take the message: {text}") from None
    except (requests.RequestException, OSError) as exc:
        raise MeshUnavailable(str(exc) or type(exc).__name__) from None


def _mesh_error(exc: MeshError) -> tuple[str, str]:
    """The MESH error code and text of a refused send (v1 errorCode, or v2 detail[].code);
    no code when the answer was not MESH's own (a proxy's 429, an empty body)."""
    text = str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else ""
    response = next((a for a in exc.args if isinstance(a, dict)), {})
    code = str(response.get("errorCode") or "")
    details = response.get("detail")
    if not code and isinstance(details, list) and details and isinstance(details[0], dict):
        code = str(details[0].get("code") or "")
        text = text or str(details[0].get("msg") or "")
    return code, (text or str(response.get("message") or response) or "no detail")[:300]

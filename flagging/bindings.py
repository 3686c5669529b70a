"""Sender authentication on MLLP: which connections may speak for which sender.

MSH-4 is a claim, never a credential. Over HTTP the bearer token proves the sender; over MLLP
the connection does: each sender is bound to the networks it connects from and/or the client
certificates it presents (mutual TLS, against the CA named by FLAGGING_MLLP_TLS_CLIENT_CA).
Every binding kind a sender has must hold (a network AND a certificate, when both are given).
A sender with no binding at all may send only over a loopback connection (a developer's
machine, a TLS terminator on the same host): security by default.

The transport facts of a connection (`Peer`) are read once when it opens, and what each
sender's bindings say about it is cached on the `Peer`, so a connection costs one lookup per
sender for its whole life, never one per message. Changed bindings apply to new connections.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flagging.errors import InvalidInput
from flagging.models import Sender, SenderBinding
from flagging.storage.rawsql import Raw

NETWORK = "network"
CERTIFICATE = "certificate"
KINDS = (NETWORK, CERTIFICATE)

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
# Python's ssl module names subject attributes in full; operators write the short names.
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "domainComponent": "DC",
    "emailAddress": "EMAILADDRESS",
    "serialNumber": "SERIALNUMBER",
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Peer:
    """The other end of one MLLP connection, as far as the transport proves it."""

    address: str  # the IP address the connection comes from
    # SHA-256 of the client certificate (DER), lowercase hex; empty without one.
    certificate_sha256: str = ""
    # The verified certificate's subject as (short name, value) pairs.
    certificate_subject: tuple[tuple[str, str], ...] = ()
    # (MSH-4, MSH-3) -> may this connection speak for that sender (filled by `may_send`).
    verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        address: str,
        certificate_der: bytes | None = None,
        subject_rdns: Iterable[Iterable[tuple[str, str]]] = (),
    ) -> Peer:
        """Build from what a socket reports: its address, the certificate's DER bytes and
        the subject as `ssl.SSLSocket.getpeercert()["subject"]` gives it."""
        subject = tuple(
            (_SHORT_NAMES.get(name, name.upper()), str(value).strip())
            for rdn in subject_rdns
            for name, value in rdn
        )
        sha256 = hashlib.sha256(certificate_der).hexdigest() if certificate_der else ""
        return cls(address, sha256, subject)

    @property
    def ip(self) -> IPAddress | None:
        try:
            ip = ipaddress.ip_address(self.address.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped  # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
        return ip

    @property
    def is_loopback(self) -> bool:
        ip = self.ip
        return ip is not None and ip.is_loopback

    def describe(self) -> str:
        """For logs and refusals: the address and, with mutual TLS, the certificate."""
        if not self.certificate_sha256:
            return self.address
        return f"{self.address} (certificate {self.certificate_sha256[:16]}...)"


@dataclass(frozen=True)
class Bindings:
    """One sender's bindings, parsed."""

    networks: tuple[IPNetwork, ...] = ()
    fingerprints: frozenset[str] = frozenset()
    subjects: tuple[frozenset[tuple[str, str]], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.networks or self.fingerprints or self.subjects)

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str]]) -> Bindings:
        networks: list[IPNetwork] = []
        fingerprints: set[str] = set()
        subjects: list[frozenset[tuple[str, str]]] = []
        for kind, value in rows:
            if kind == NETWORK:
                networks.append(ipaddress.ip_network(value, strict=False))
            elif kind == CERTIFICATE and _FINGERPRINT.match(value):
                fingerprints.add(value)
            elif kind == CERTIFICATE:
                subjects.append(frozenset(_subject_pairs(value)))
        return cls(tuple(networks), frozenset(fingerprints), tuple(subjects))

    def permit(self, peer: Peer) -> bool:
        """Whether a connection may speak for the sender with these bindings."""
        if self.empty:
            return peer.is_loopback
        if self.networks:
            ip = peer.ip
            if ip is None or not any(ip in network for network in self.networks):
                return False
        if self.fingerprints or self.subjects:
            presented = set(peer.certificate_subject)
            if peer.certificate_sha256 not in self.fingerprints and not any(
                wanted <= presented for wanted in self.subjects
            ):
                return False
        return True


# Once per connection and sender: the sender the MSH-4/MSH-3 pair names (the rule of
# flagging.organisations.sender_policy), then its bindings.
_FIND_SENDER = (
    "SELECT id FROM senders WHERE ods_code = :facility AND application IN (:application, '')"
    " ORDER BY application DESC LIMIT 1"
)
_BINDINGS = "SELECT kind, value FROM sender_bindings WHERE sender_id = :sender"


def known_verdict(peer: Peer, facility: str, application: str) -> bool | None:
    """What `may_send` found earlier on this connection for this sender, without a query."""
    return peer.verdicts.get((facility.upper(), application))


def may_send(raw: Raw, peer: Peer, facility: str, application: str) -> bool:
    """Whether `peer` may send as the sender that MSH-4 `facility` (MSH-3 `application`)
    names. True when no such sender is registered: the message is then rejected as coming
    from an unregistered sender, the older and more useful answer."""
    key = (facility.upper(), application)
    verdict = peer.verdicts.get(key)
    if verdict is not None:
        return verdict
    sender_id = raw.scalar(_FIND_SENDER, {"facility": key[0], "application": application})
    if sender_id is None:
        return True  # not cached: a sender registered later is checked on its first message
    rows = raw.execute(_BINDINGS, {"sender": int(sender_id)}).fetchall()
    verdict = peer.verdicts[key] = Bindings.of((r[0], r[1]) for r in rows).permit(peer)
    return verdict


_REFUSAL = "may not send on this connection"


def refusal(facility: str) -> str:
    """ERR-8 of a message whose sender is not bound to the connection it came on."""
    return f"sender {facility or '(empty MSH-4)'} {_REFUSAL}"


def is_refusal(error_text: str) -> bool:
    """Whether a recorded message was refused by `refusal` (never to be reprocessed)."""
    return error_text.endswith(_REFUSAL)


# Administration --------------------------------------------------------------------------


def normalise_network(value: str) -> str:
    """A CIDR (IPv4 or IPv6; a bare address means that one host), written canonically."""
    text = value.strip()
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a network (CIDR such as 10.20.0.0/16)") from None
    raise InvalidInput(f"{value!r} has host bits set: did you mean {network}?")


def _subject_pairs(value: str) -> list[tuple[str, str]]:
    pairs = []
    for part in value.split(","):
        name, sep, attr = part.partition("=")
        if not sep or not name.strip() or not attr.strip():
            raise InvalidInput(f"{value!r} is not a certificate subject (such as CN=ra7-epr,O=X)")
        pairs.append((name.strip().upper(), attr.strip()))
    return pairs


def normalise_certificate(value: str) -> str:
    """A certificate's SHA-256 fingerprint (64 hex digits, colons allowed) or its subject
    ("CN=...,O=..."; it must name the CN), written canonically."""
    text = value.strip()
    hex_digits = text.replace(":", "").lower()
    if _FINGERPRINT.match(hex_digits):
        return hex_digits
    if "=" not in text:
        raise InvalidInput(
            f"{value!r} is neither a SHA-256 fingerprint (64 hex digits) nor a subject (CN=...)"
        )
    pairs = _subject_pairs(text)
    if not any(name == "CN" for name, _ in pairs):
        raise InvalidInput(f"certificate subject {value!r} must name its CN")
    return ",".join(f"{name}={attr}" for name, attr in pairs)


def set_bindings(
    session: Session,
    sender_id: int,
    *,
    networks: list[str] | None = None,
    certificates: list[str] | None = None,
) -> dict[str, list[str]]:
    """Replace a sender's networks and/or certificates (None: leave that kind as it is; an
    empty list: remove them all). Returns the sender's bindings afterwards."""
    replacing: dict[str, list[str]] = {}
    if networks is not None:
        replacing[NETWORK] = sorted({normalise_network(n) for n in networks})
    if certificates is not None:
        replacing[CERTIFICATE] = sorted({normalise_certificate(c) for c in certificates})
    for kind, values in replacing.items():
        session.execute(
            delete(SenderBinding).where(
                SenderBinding.sender_id == sender_id, SenderBinding.kind == kind
            )
        )
        session.add_all(SenderBinding(sender_id=sender_id, kind=kind, value=v) for v in values)
    session.flush()
    return bindings_by_sender(session).get(sender_id, {NETWORK: [], CERTIFICATE: []})


def bindings_by_sender(session: Session) -> dict[int, dict[str, list[str]]]:
    """Every sender's bindings: sender id -> {"network": [...], "certificate": [...]}."""
    found: dict[int, dict[str, list[str]]] = {}
    rows = session.execute(
        select(SenderBinding.sender_id, SenderBinding.kind, SenderBinding.value).order_by(
            SenderBinding.sender_id, SenderBinding.kind, SenderBinding.value
        )
    )
    for sender_id, kind, value in rows:
        found.setdefault(sender_id, {NETWORK: [], CERTIFICATE: []})[kind].append(value)
    return found


def bound_networks(session: Session) -> list[str]:
    """Every network some sender is bound to: the addresses the listener keeps slots for."""
    rows = session.scalars(
        select(SenderBinding.value).where(SenderBinding.kind == NETWORK).distinct()
    )
    return sorted(rows)


def unbound_senders(session: Session) -> list[str]:
    """ODS codes (with MSH-3, if any) of senders that have no binding at all."""
    bound = select(SenderBinding.sender_id)
    rows = session.execute(
        select(Sender.ods_code, Sender.application)
        .where(Sender.id.not_in(bound))
        .order_by(Sender.ods_code, Sender.application)
    )
    return [f"{ods} {app}".strip() for ods, app in rows]


def is_loopback_host(host: str) -> bool:
    """Whether a listening address accepts only connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False

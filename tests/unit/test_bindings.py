"""Sender bindings: which connection may speak for a sender (no I/O)."""

from __future__ import annotations

import pytest

from flagging.bindings import (
    CERTIFICATE,
    NETWORK,
    Bindings,
    Peer,
    is_loopback_host,
    normalise_certificate,
    normalise_network,
)
from flagging.errors import InvalidInput

FINGERPRINT = "ab" * 32
SUBJECT = ((("commonName", "ra7-engine"),), (("organizationName", "Example Hospitals"),))


def _peer(address: str, *, certificate: bool = False) -> Peer:
    if not certificate:
        return Peer.of(address)
    peer = Peer.of(address, b"certificate bytes", SUBJECT)
    return Peer(address, FINGERPRINT, peer.certificate_subject)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.1.2.3", False),
        ("203.0.113.5", False),
        ("::ffff:203.0.113.5", False),
        ("2001:db8::5", False),
    ],
)
def test_a_sender_with_no_binding_may_send_only_over_loopback(address: str, allowed: bool) -> None:
    assert Bindings.of([]).permit(_peer(address)) is allowed


def test_a_network_binding_admits_its_networks_ipv4_ipv6_and_mapped_addresses() -> None:
    bound = Bindings.of([(NETWORK, "192.0.2.0/24"), (NETWORK, "2001:db8::/32")])
    assert bound.permit(_peer("192.0.2.77"))
    assert bound.permit(_peer("::ffff:192.0.2.77"))  # a dual-stack listener's view of IPv4
    assert bound.permit(_peer("2001:db8::1"))
    assert not bound.permit(_peer("192.0.3.1"))
    assert not bound.permit(_peer("127.0.0.1"))  # bound senders lose the loopback default


def test_a_certificate_binding_admits_its_fingerprint_or_its_subject() -> None:
    by_fingerprint = Bindings.of([(CERTIFICATE, FINGERPRINT)])
    by_subject = Bindings.of([(CERTIFICATE, "CN=ra7-engine,O=Example Hospitals")])
    by_cn = Bindings.of([(CERTIFICATE, "CN=ra7-engine")])
    other = Bindings.of([(CERTIFICATE, "CN=rxx-engine")])
    presented = _peer("10.0.0.1", certificate=True)
    assert by_fingerprint.permit(presented)
    assert by_subject.permit(presented)
    assert by_cn.permit(presented)
    assert not other.permit(presented)
    for bound in (by_fingerprint, by_subject):
        assert not bound.permit(_peer("10.0.0.1"))  # no certificate presented
        assert not bound.permit(_peer("127.0.0.1"))


def test_a_sender_with_a_network_and_a_certificate_needs_both() -> None:
    bound = Bindings.of([(NETWORK, "10.0.0.0/8"), (CERTIFICATE, FINGERPRINT)])
    assert bound.permit(_peer("10.0.0.1", certificate=True))
    assert not bound.permit(_peer("10.0.0.1"))
    assert not bound.permit(_peer("192.0.2.1", certificate=True))


def test_networks_are_written_canonically_and_mistakes_are_refused() -> None:
    assert normalise_network(" 10.20.0.0/16 ") == "10.20.0.0/16"
    assert normalise_network("192.0.2.7") == "192.0.2.7/32"
    assert normalise_network("2001:DB8::/32") == "2001:db8::/32"
    with pytest.raises(InvalidInput, match=r"did you mean 10\.20\.0\.0/16"):
        normalise_network("10.20.1.2/16")
    with pytest.raises(InvalidInput, match="is not a network"):
        normalise_network("intranet")


def test_certificates_are_written_canonically_and_mistakes_are_refused() -> None:
    colons = ":".join(["AB"] * 32)
    assert normalise_certificate(colons) == FINGERPRINT
    assert normalise_certificate("cn = ra7-engine , o=Example") == "CN=ra7-engine,O=Example"
    with pytest.raises(InvalidInput, match="must name its CN"):
        normalise_certificate("O=NHS")
    with pytest.raises(InvalidInput, match="neither a SHA-256 fingerprint"):
        normalise_certificate("abcd")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 (a value under test, not a binding)
        ("", False),
    ],
)
def test_loopback_listening_addresses_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback

"""The FLAGGING_MESH_* settings: our own MESH mailbox, its secrets and certificate."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from mesh.client import MeshConfig


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    return {
        "FLAGGING_INSTANCE_PATH": str(tmp_path / "instance"),
        # Production wants a strong key: 64 hex digits of 32 random bytes.
        "FLAGGING_SECRET_KEY": secrets.token_hex(32),
    }


MESH = {
    "FLAGGING_MESH_URL": "https://mesh.example.test",
    "FLAGGING_MESH_MAILBOX": "rxxot001",
    "FLAGGING_MESH_PASSWORD": "pw",
    "FLAGGING_MESH_SHARED_KEY": "shared",
    "FLAGGING_MESH_CERT": "/etc/mesh/cert.pem",
    "FLAGGING_MESH_KEY": "/etc/mesh/key.pem",
    "FLAGGING_MESH_CA_CERT": "/etc/mesh/ca.pem",
}


def test_every_mesh_variable_is_mapped_and_the_secrets_stay_out_of_repr(
    base: dict[str, str],
) -> None:
    settings = load_settings({**base, **MESH, "FLAGGING_ENV": "production"})
    assert MeshConfig.from_settings(settings) == MeshConfig(
        "https://mesh.example.test",
        "RXXOT001",
        "pw",
        "shared",
        "/etc/mesh/cert.pem",
        "/etc/mesh/key.pem",
        "/etc/mesh/ca.pem",
    )
    assert "'pw'" not in repr(settings)
    assert "shared" not in repr(settings)


def test_mesh_is_off_without_a_mailbox(base: dict[str, str]) -> None:
    assert MeshConfig.from_settings(load_settings(base)) is None


@pytest.mark.parametrize("missing", ["FLAGGING_MESH_URL", "FLAGGING_MESH_PASSWORD"])
def test_a_mailbox_without_its_address_or_password_is_refused(
    base: dict[str, str], missing: str
) -> None:
    with pytest.raises(ConfigError, match=missing):
        load_settings({**base, **{k: v for k, v in MESH.items() if k != missing}})


def test_a_certificate_without_its_key_is_refused(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_MESH_KEY"):
        load_settings({**base, **{k: v for k, v in MESH.items() if k != "FLAGGING_MESH_KEY"}})


def test_production_mesh_needs_https_and_a_client_certificate(base: dict[str, str]) -> None:
    production = {**base, "FLAGGING_ENV": "production"}
    with pytest.raises(ConfigError, match="https"):
        load_settings({**production, **MESH, "FLAGGING_MESH_URL": "http://mesh.example.test"})
    plain = {k: v for k, v in MESH.items() if k not in ("FLAGGING_MESH_CERT", "FLAGGING_MESH_KEY")}
    with pytest.raises(ConfigError, match="certificate"):
        load_settings({**production, **plain})

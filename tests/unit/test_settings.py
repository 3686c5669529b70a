"""Settings: each FLAGGING_* variable mapped with its type and default, checked at load."""

from __future__ import annotations

import secrets
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from config import ConfigError, Settings, load_settings

MIB = 1024 * 1024
STRONG_KEY = "9f1c2e7ab4d05863c7e1f2a9b0d4e6c8a1f3b5d7e9c2a4f6b8d0e1c3a5f7b9d2"  # 32 bytes, hex


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    """The least environment: an instance folder of the test's own."""
    return {"FLAGGING_INSTANCE_PATH": str(tmp_path / "instance")}


def test_defaults(base: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(base)

    instance = (tmp_path / "instance").resolve()
    assert settings.env == "development"
    assert not settings.is_production
    assert settings.instance_path == instance
    assert settings.database_url == f"sqlite:///{instance / 'flagging.sqlite3'}"
    assert settings.is_sqlite
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8000)
    assert (settings.mllp_host, settings.mllp_port) == ("127.0.0.1", 2575)
    assert settings.mllp_max_connections == 64
    assert settings.mllp_idle_timeout == 300.0
    assert (settings.mllp_tls_cert, settings.mllp_tls_key) == ("", "")
    assert settings.max_message_bytes == 16 * MIB
    assert settings.fallback_charset == "windows-1252"
    assert settings.processing_ids == ("P", "T", "D")
    assert (settings.application_name, settings.facility_name) == ("FLAGGING", "FLAGGING")
    assert settings.log_level == "INFO"


def test_development_secret_is_generated_once_and_kept_in_the_instance_folder(
    base: dict[str, str], tmp_path: Path
) -> None:
    first = load_settings(base)
    second = load_settings(base)

    key_file = tmp_path / "instance" / "secret_key"
    assert len(first.secret_key) == 64
    assert first.secret_key == second.secret_key == key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_every_flagging_variable_is_mapped(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "FLAGGING_ENV": "production",
            "FLAGGING_INSTANCE_PATH": str(tmp_path / "inst"),
            "FLAGGING_DATABASE_URL": "postgresql+psycopg://u:p@db/flagging",
            "FLAGGING_DATABASE_TIMEOUT": "2.5",
            "FLAGGING_SECRET_KEY": f" {STRONG_KEY} ",
            "FLAGGING_HTTP_HOST": "192.0.2.10",
            "FLAGGING_HTTP_PORT": "8080",
            "FLAGGING_MLLP_HOST": "10.0.0.5",
            "FLAGGING_MLLP_PORT": "6661",
            "FLAGGING_MLLP_MAX_CONNECTIONS": "200",
            "FLAGGING_MLLP_IDLE_TIMEOUT": "12.5",
            "FLAGGING_MLLP_FRAME_DEADLINE": "30",
            "FLAGGING_MLLP_MAX_CONNECTIONS_PER_ADDRESS": "20",
            "FLAGGING_MLLP_RESERVED_CONNECTIONS": "50",
            "FLAGGING_MLLP_RESERVED_NETWORKS": "10.1.0.0/16, 2001:db8::/32",
            "FLAGGING_MLLP_TLS_CERT": "/etc/tls/cert.pem",
            "FLAGGING_MLLP_TLS_KEY": "/etc/tls/key.pem",
            "FLAGGING_MLLP_TLS_CLIENT_CA": "/etc/tls/senders-ca.pem",
            "FLAGGING_PUSH_TLS_CA": "/etc/tls/practices-ca.pem",
            "FLAGGING_PUSH_TLS_CERT": "/etc/tls/push-cert.pem",
            "FLAGGING_PUSH_TLS_KEY": "/etc/tls/push-key.pem",
            "FLAGGING_MAX_MESSAGE_BYTES": "2048",
            "FLAGGING_FALLBACK_CHARSET": "iso8859-1",
            "FLAGGING_PROCESSING_IDS": "p, t",
            "FLAGGING_APPLICATION_NAME": "FLAGS",
            "FLAGGING_FACILITY_NAME": "RXX-FLAGS",
            "FLAGGING_LOG_LEVEL": "debug",
            "FLAGGING_WEB_WORKERS": "5",
            "FLAGGING_WEB_THREADS": "8",
            "FLAGGING_METRICS_TOKEN": "scrape-me",
            "FLAGGING_METRICS_DIR": str(tmp_path / "prom"),
            "FLAGGING_RETENTION_DAYS": "2920",
            "FLAGGING_ALERT_SILENCE_FACTOR": "4.5",
            "FLAGGING_ALERT_WORKING_HOURS": "7-19",
            "FLAGGING_ALERT_PUSH_FAILING_MINUTES": "15",
            "FLAGGING_ALERT_QUARANTINE_GROWTH": "3",
        }
    )

    assert settings == Settings(
        env="production",
        instance_path=(tmp_path / "inst").resolve(),
        database_url="postgresql+psycopg://u:p@db/flagging",
        database_timeout=2.5,
        secret_key=STRONG_KEY,
        http_host="192.0.2.10",
        http_port=8080,
        mllp_host="10.0.0.5",
        mllp_port=6661,
        mllp_max_connections=200,
        mllp_idle_timeout=12.5,
        mllp_frame_deadline=30.0,
        mllp_max_connections_per_address=20,
        mllp_reserved_connections=50,
        mllp_reserved_networks=("10.1.0.0/16", "2001:db8::/32"),
        mllp_tls_cert="/etc/tls/cert.pem",
        mllp_tls_key="/etc/tls/key.pem",
        mllp_tls_client_ca="/etc/tls/senders-ca.pem",
        push_tls_ca="/etc/tls/practices-ca.pem",
        push_tls_cert="/etc/tls/push-cert.pem",
        push_tls_key="/etc/tls/push-key.pem",
        max_message_bytes=2048,
        fallback_charset="iso8859-1",
        processing_ids=("P", "T"),
        application_name="FLAGS",
        facility_name="RXX-FLAGS",
        log_level="DEBUG",
        web_workers=5,
        web_threads=8,
        metrics_token="scrape-me",
        metrics_dir=(tmp_path / "prom").resolve(),
        retention_days=2920,
        alert_silence_factor=4.5,
        alert_working_hours=(7, 19),
        alert_push_failing_minutes=15,
        alert_quarantine_growth=3,
    )
    assert settings.is_production
    assert not settings.is_sqlite
    # A secret given in the environment is not written to the instance folder.
    assert not (tmp_path / "inst" / "secret_key").exists()


def test_a_small_connection_limit_alone_brings_the_per_address_and_reserved_ones_down(
    base: dict[str, str],
) -> None:
    settings = load_settings({**base, "FLAGGING_MLLP_MAX_CONNECTIONS": "8"})

    assert settings.mllp_max_connections_per_address == 8
    assert settings.mllp_reserved_connections == 2


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({"FLAGGING_MLLP_MAX_CONNECTIONS_PER_ADDRESS": "65"}, "PER_ADDRESS"),
        ({"FLAGGING_MLLP_MAX_CONNECTIONS_PER_ADDRESS": "0"}, "PER_ADDRESS"),
        ({"FLAGGING_MLLP_RESERVED_CONNECTIONS": "64"}, "RESERVED_CONNECTIONS"),
        ({"FLAGGING_MLLP_RESERVED_NETWORKS": "10.0.0.0/8, the hospital"}, "RESERVED_NETWORKS"),
        ({"FLAGGING_MLLP_FRAME_DEADLINE": "0"}, "FRAME_DEADLINE"),
    ],
)
def test_connection_limits_that_cannot_work_are_refused(
    base: dict[str, str], variables: dict[str, str], name: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({**base, **variables})


def test_production_without_a_secret_key_is_refused(base: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_SECRET_KEY"):
        load_settings({**base, "FLAGGING_ENV": "production"})

    assert not (tmp_path / "instance" / "secret_key").exists()


def test_production_with_a_blank_secret_key_is_refused(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_SECRET_KEY"):
        load_settings({**base, "FLAGGING_ENV": "production", "FLAGGING_SECRET_KEY": "   "})


def test_unknown_environment_name_is_refused(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_ENV"):
        load_settings({**base, "FLAGGING_ENV": "prod"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLAGGING_HTTP_PORT", "eighty"),
        ("FLAGGING_MLLP_PORT", "2575.5"),
        ("FLAGGING_MLLP_MAX_CONNECTIONS", "many"),
        ("FLAGGING_MLLP_IDLE_TIMEOUT", "5 minutes"),
        ("FLAGGING_DATABASE_TIMEOUT", "10s"),
        ("FLAGGING_DATABASE_TIMEOUT", "0"),
        ("FLAGGING_DATABASE_TIMEOUT", "nan"),
        ("FLAGGING_DATABASE_TIMEOUT", "inf"),
        ("FLAGGING_MAX_MESSAGE_BYTES", "16MiB"),
        ("FLAGGING_WEB_WORKERS", "0"),
        ("FLAGGING_RETENTION_DAYS", "-1"),
        ("FLAGGING_ALERT_WORKING_HOURS", "18-8"),
        ("FLAGGING_ALERT_WORKING_HOURS", "office hours"),
    ],
)
def test_a_number_that_does_not_read_as_one_is_refused_naming_the_variable(
    base: dict[str, str], name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({**base, name: value})


def test_a_tiny_message_size_limit_is_refused(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_MAX_MESSAGE_BYTES"):
        load_settings({**base, "FLAGGING_MAX_MESSAGE_BYTES": "1023"})


def test_an_unknown_fallback_charset_is_refused(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_FALLBACK_CHARSET"):
        load_settings({**base, "FLAGGING_FALLBACK_CHARSET": "klingon-8"})


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db:5432/flagging", "postgresql+psycopg://u:p@db:5432/flagging"),
        ("postgresql+psycopg://u@db/f", "postgresql+psycopg://u@db/f"),
        ("sqlite:////var/lib/flagging.sqlite3", "sqlite:////var/lib/flagging.sqlite3"),
    ],
)
def test_plain_postgresql_urls_are_given_the_psycopg_driver(
    base: dict[str, str], given: str, used: str
) -> None:
    assert load_settings({**base, "FLAGGING_DATABASE_URL": given}).database_url == used


@pytest.mark.parametrize(("cert", "key"), [("/etc/tls/cert.pem", ""), ("", "/etc/tls/key.pem")])
def test_tls_certificate_and_key_must_come_together(
    base: dict[str, str], cert: str, key: str
) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_MLLP_TLS"):
        load_settings({**base, "FLAGGING_MLLP_TLS_CERT": cert, "FLAGGING_MLLP_TLS_KEY": key})


def test_a_client_ca_without_tls_on_the_listener_is_refused(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_MLLP_TLS_CLIENT_CA needs TLS"):
        load_settings({**base, "FLAGGING_MLLP_TLS_CLIENT_CA": "/etc/tls/ca.pem"})


def test_push_client_certificate_and_key_must_come_together(base: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_PUSH_TLS_CERT and FLAGGING_PUSH_TLS_KEY"):
        load_settings({**base, "FLAGGING_PUSH_TLS_CERT": "/etc/tls/push.pem"})


def test_config_file_is_read(base: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "flagging.toml"
    config.write_text(
        "FLAGGING_HTTP_PORT = 9000\n"
        'FLAGGING_MLLP_HOST = "192.0.2.10"\n'
        "FLAGGING_MLLP_IDLE_TIMEOUT = 30.5\n"
        'FLAGGING_DATABASE_URL = "postgresql://file@db/flagging"\n'
    )

    settings = load_settings({**base, "FLAGGING_CONFIG": str(config)})

    assert settings.http_port == 9000
    assert settings.mllp_host == "192.0.2.10"
    assert settings.mllp_idle_timeout == 30.5
    assert settings.database_url == "postgresql+psycopg://file@db/flagging"


def test_environment_wins_over_the_config_file(base: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "flagging.toml"
    config.write_text('FLAGGING_HTTP_PORT = 9000\nFLAGGING_LOG_LEVEL = "WARNING"\n')

    settings = load_settings({**base, "FLAGGING_CONFIG": str(config), "FLAGGING_HTTP_PORT": "9100"})

    assert settings.http_port == 9100
    assert settings.log_level == "WARNING"


def test_config_file_values_are_checked_like_the_environment(
    base: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "flagging.toml"
    config.write_text('FLAGGING_ENV = "production"\n')

    with pytest.raises(ConfigError, match="FLAGGING_SECRET_KEY"):
        load_settings({**base, "FLAGGING_CONFIG": str(config)})


def test_missing_config_file_is_refused(base: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="FLAGGING_CONFIG"):
        load_settings({**base, "FLAGGING_CONFIG": str(tmp_path / "absent.toml")})


def test_config_file_that_is_not_toml_is_refused(base: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "flagging.toml"
    config.write_text("FLAGGING_HTTP_PORT: 9000\n")

    with pytest.raises(ConfigError, match="FLAGGING_CONFIG"):
        load_settings({**base, "FLAGGING_CONFIG": str(config)})


def test_settings_are_frozen(base: dict[str, str]) -> None:
    settings = load_settings(base)

    with pytest.raises(AttributeError):
        settings.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "key",
    [
        "s3cret",
        "change-me-in-production",
        "a" * 200,
        "password" * 10,
        "0123456789abcdef" * 2,  # 16 distinct hex characters, but only 128 bits
    ],
)
def test_production_refuses_a_secret_key_of_fewer_than_32_random_bytes(
    base: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError, match="32 random bytes"):
        load_settings({**base, "FLAGGING_ENV": "production", "FLAGGING_SECRET_KEY": key})


@pytest.mark.parametrize("make", [lambda: secrets.token_hex(32), lambda: secrets.token_urlsafe(32)])
def test_production_accepts_a_secret_key_of_32_random_bytes(
    base: dict[str, str], make: Callable[[], str]
) -> None:
    key = make()
    settings = load_settings({**base, "FLAGGING_ENV": "production", "FLAGGING_SECRET_KEY": key})
    assert settings.secret_key == key


def test_development_keeps_accepting_a_short_secret_key(base: dict[str, str]) -> None:
    assert load_settings({**base, "FLAGGING_SECRET_KEY": "s3cret"}).secret_key == "s3cret"


def test_log_format_is_text_or_json(base: dict[str, str]) -> None:
    assert load_settings(base).log_format == "text"
    assert load_settings({**base, "FLAGGING_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="FLAGGING_LOG_FORMAT"):
        load_settings({**base, "FLAGGING_LOG_FORMAT": "xml"})


def test_production_accepts_processing_id_p_only_unless_the_operator_lists_more(
    base: dict[str, str],
) -> None:
    production = {**base, "FLAGGING_ENV": "production", "FLAGGING_SECRET_KEY": STRONG_KEY}

    assert load_settings(production).processing_ids == ("P",)
    assert load_settings({**production, "FLAGGING_PROCESSING_IDS": "P,T"}).processing_ids == (
        "P",
        "T",
    )
    assert load_settings(base).processing_ids == ("P", "T", "D")

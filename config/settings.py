"""One frozen settings object, each environment variable mapped explicitly with type and default.

The web app, the MLLP listener, the scheduler and Alembic all read settings through
`load_settings()`; Flask's `app.config` is filled from it, never the reverse.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    instance_path: Path = Path("instance")
    database_url: str = ""
    # PostgreSQL: seconds the ingest writer waits for the server's answer (and any connection
    # for its start-up) before it gives up: the message is answered AR, never left unanswered,
    # when the server stalls, a lock is held elsewhere or the network drops its packets.
    database_timeout: float = 10.0
    secret_key: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_max_connections: int = 64
    mllp_idle_timeout: float = 300.0
    # Seconds a connection has to deliver a whole frame once its first byte arrives: the idle
    # timeout only counts silence, and a byte every few seconds would hold a slot forever.
    mllp_frame_deadline: float = 60.0
    # At most this many connections from one source address, so one host cannot take them all.
    mllp_max_connections_per_address: int = 16
    # Slots only registered senders' networks may use (`mllp_reserved_networks`, and the
    # senders' bindings where the composition root wires them).
    mllp_reserved_connections: int = 16
    mllp_reserved_networks: tuple[str, ...] = ()
    mllp_tls_cert: str = ""
    mllp_tls_key: str = ""
    # A CA file: when set, the listener requires each client to present a certificate it
    # signed (mutual TLS), which senders can then be bound to (flagging senders set).
    mllp_tls_client_ca: str = ""
    # The MLLP push to practices that use TLS (flagging practices set --push-tls): the CAs
    # their servers' certificates are checked against (empty: the system's), and our own
    # client certificate and key, for practices that require mutual TLS.
    push_tls_ca: str = ""
    push_tls_cert: str = ""
    push_tls_key: str = ""
    max_message_bytes: int = 16 * MIB
    # Used when MSH-18 is empty and the bytes are not valid UTF-8 (many UK feeds send
    # Windows-1252 without saying so).
    fallback_charset: str = "windows-1252"
    # MSH-11 values accepted (table 0103: P production, T training, D debugging). Production
    # takes P only unless the operator lists more: a training message must never reach a
    # practice as if it were about a real patient.
    processing_ids: tuple[str, ...] = ("P", "T", "D")
    # Our own identity in ACKs when the sender left MSH-5/6 empty.
    application_name: str = "FLAGGING"
    facility_name: str = "FLAGGING"
    log_level: str = "INFO"
    # "text", or "json" (one object a line, with the request id) for a log collector.
    log_format: str = "text"
    # Single sign-on in a reverse proxy: the request header that names the signed-in user
    # (e.g. X-Remote-User). Empty (the default) turns the mode off. Only for a proxy that
    # strips the header from what clients send.
    trusted_user_header: str = ""
    # How long a clinician's or administrator's sign-in lasts.
    session_hours: int = 8
    # MESH, for practices that receive their feed in their MESH mailbox: the MESH server's
    # address, our own mailbox, its password and the environment's shared secret (the HMAC
    # key of MESH's authorisation header), and the client certificate and key MESH issued for
    # the mailbox (mutual TLS), with the CA bundle to check MESH's own certificate. An empty
    # mailbox turns the channel off.
    mesh_url: str = ""
    mesh_mailbox: str = ""
    mesh_password: str = field(default="", repr=False)
    mesh_shared_key: str = field(default="", repr=False)
    mesh_cert: str = ""
    mesh_key: str = ""
    mesh_ca_cert: str = ""
    # Operations (README "Deploy"): gunicorn's workers and threads for `flagging web`.
    web_workers: int = 2
    web_threads: int = 4
    # /metrics answers only a request bearing this token; empty (the default) closes it.
    metrics_token: str = ""
    # Where every process of this machine keeps its counters for /metrics to add up
    # (prometheus_client's multiprocess mode); one folder per machine, shared by its processes.
    metrics_dir: Path = Path("instance/metrics")
    # Raw message bytes older than this many days are deleted by the retention job; 0 keeps
    # them for ever (the default: a trust applies its own records retention schedule).
    retention_days: int = 0
    # Alert rules (dashboard and /metrics): a sender silent for longer than this many times
    # its usual gap during working hours; push failing for longer than these minutes; the
    # quarantine grown by this many messages in the last hour.
    alert_silence_factor: float = 3.0
    alert_working_hours: tuple[int, int] = (8, 18)
    alert_push_failing_minutes: int = 30
    alert_quarantine_growth: int = 10

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


MIN_SECRET_KEY_BITS = 256  # 32 random bytes
_HEX = frozenset("0123456789abcdefABCDEF")
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")


def secret_key_bits(key: str) -> int:
    """At most how many random bits `key` can hold: 4 a character for hex, 6 for base64, 8
    otherwise; and a key of few distinct characters ('aaaa...', a word repeated) counts as
    the bits of those few."""
    chars = set(key)
    hex_only = chars <= _HEX
    per_char = 4 if hex_only else 6 if chars <= _BASE64 else 8
    # A random key of 32 bytes shows (all but certainly) at least 10 of the 16 hex digits,
    # or 16 distinct characters of a larger alphabet.
    if len(chars) < (10 if hex_only else 16):
        return len(chars) * per_char
    return len(key) * per_char


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None


def _from_file(path: str) -> dict[str, str]:
    """Read `FLAGGING_*` names from a TOML file (flat table of strings, numbers or booleans)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read FLAGGING_CONFIG file {path}: {exc}") from None
    return {str(k): str(v) for k, v in data.items()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from environment variables (and the file named by FLAGGING_CONFIG)."""
    source = dict(os.environ if environ is None else environ)
    if source.get("FLAGGING_CONFIG"):
        source = {**_from_file(source["FLAGGING_CONFIG"]), **source}

    def get(name: str, default: str = "") -> str:
        return source.get(name, default).strip()

    env = get("FLAGGING_ENV", "development")
    if env not in ("development", "production", "test"):
        raise ConfigError(f"FLAGGING_ENV must be development, production or test, not {env!r}")
    instance = Path(get("FLAGGING_INSTANCE_PATH", "instance")).resolve()

    database_url = get("FLAGGING_DATABASE_URL")
    if not database_url:
        database_url = f"sqlite:///{instance / 'flagging.sqlite3'}"
    if database_url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")

    secret_key = get("FLAGGING_SECRET_KEY")
    if not secret_key:
        if env == "production":
            raise ConfigError("FLAGGING_SECRET_KEY is required in production")
        secret_key = _instance_secret(instance)
    elif env == "production" and secret_key_bits(secret_key) < MIN_SECRET_KEY_BITS:
        raise ConfigError(
            "FLAGGING_SECRET_KEY is too weak for production: it signs every session, so it "
            "needs at least 32 random bytes (make one with: python3 -c "
            "'import secrets; print(secrets.token_hex(32))')"
        )

    tls_cert, tls_key = get("FLAGGING_MLLP_TLS_CERT"), get("FLAGGING_MLLP_TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("FLAGGING_MLLP_TLS_CERT and FLAGGING_MLLP_TLS_KEY must be set together")

    client_ca = get("FLAGGING_MLLP_TLS_CLIENT_CA")
    if client_ca and not tls_cert:
        raise ConfigError(
            "FLAGGING_MLLP_TLS_CLIENT_CA needs TLS on the listener: set FLAGGING_MLLP_TLS_CERT "
            "and FLAGGING_MLLP_TLS_KEY too"
        )
    push_cert, push_key = get("FLAGGING_PUSH_TLS_CERT"), get("FLAGGING_PUSH_TLS_KEY")
    if bool(push_cert) != bool(push_key):
        raise ConfigError("FLAGGING_PUSH_TLS_CERT and FLAGGING_PUSH_TLS_KEY must be set together")

    default_ids = "P" if env == "production" else "P,T,D"
    processing_ids = tuple(
        p.strip().upper()
        for p in get("FLAGGING_PROCESSING_IDS", default_ids).split(",")
        if p.strip()
    )
    fallback = get("FLAGGING_FALLBACK_CHARSET", "windows-1252")
    try:
        "".encode(fallback)
    except LookupError:
        raise ConfigError(f"FLAGGING_FALLBACK_CHARSET {fallback!r} is not a known codec") from None

    max_connections = _int(
        get("FLAGGING_MLLP_MAX_CONNECTIONS", "64"), "FLAGGING_MLLP_MAX_CONNECTIONS"
    )
    # Unset, both follow the number of connections (16 of the default 64 each), so that
    # setting FLAGGING_MLLP_MAX_CONNECTIONS alone never makes them contradict it.
    per_address = _int(
        get("FLAGGING_MLLP_MAX_CONNECTIONS_PER_ADDRESS", str(max(1, min(16, max_connections)))),
        "FLAGGING_MLLP_MAX_CONNECTIONS_PER_ADDRESS",
    )
    reserved = _int(
        get("FLAGGING_MLLP_RESERVED_CONNECTIONS", str(min(16, max_connections // 4))),
        "FLAGGING_MLLP_RESERVED_CONNECTIONS",
    )
    if max_connections < 1 or not 1 <= per_address <= max_connections:
        raise ConfigError(
            "FLAGGING_MLLP_MAX_CONNECTIONS_PER_ADDRESS must be between 1 and "
            "FLAGGING_MLLP_MAX_CONNECTIONS"
        )
    if not 0 <= reserved < max_connections:
        raise ConfigError(
            "FLAGGING_MLLP_RESERVED_CONNECTIONS must be at least 0 and below "
            "FLAGGING_MLLP_MAX_CONNECTIONS"
        )
    reserved_networks = tuple(
        n.strip() for n in get("FLAGGING_MLLP_RESERVED_NETWORKS").split(",") if n.strip()
    )
    for network in reserved_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"FLAGGING_MLLP_RESERVED_NETWORKS: {network!r} is not a network (CIDR)"
            ) from None
    frame_deadline = _float(
        get("FLAGGING_MLLP_FRAME_DEADLINE", "60"), "FLAGGING_MLLP_FRAME_DEADLINE"
    )
    if frame_deadline <= 0:
        raise ConfigError("FLAGGING_MLLP_FRAME_DEADLINE must be a positive number of seconds")
    mesh = {
        name: get(f"FLAGGING_MESH_{name.upper()}")
        for name in ("url", "mailbox", "password", "shared_key", "cert", "key", "ca_cert")
    }
    if mesh["mailbox"]:
        missing = [n for n in ("url", "password", "shared_key") if not mesh[n]]
        if missing:
            names = ", ".join(f"FLAGGING_MESH_{n.upper()}" for n in missing)
            raise ConfigError(f"FLAGGING_MESH_MAILBOX is set: {names} must be set too")
    if bool(mesh["cert"]) != bool(mesh["key"]):
        raise ConfigError("FLAGGING_MESH_CERT and FLAGGING_MESH_KEY must be set together")
    if mesh["mailbox"] and env == "production":
        if not mesh["url"].startswith("https://"):
            raise ConfigError("FLAGGING_MESH_URL must be https:// in production")
        if not mesh["cert"]:
            raise ConfigError(
                "MESH needs its client certificate in production (FLAGGING_MESH_CERT)"
            )

    max_bytes = _int(get("FLAGGING_MAX_MESSAGE_BYTES", str(16 * MIB)), "FLAGGING_MAX_MESSAGE_BYTES")
    if max_bytes < 1024:
        raise ConfigError("FLAGGING_MAX_MESSAGE_BYTES must be at least 1024")

    log_format = get("FLAGGING_LOG_FORMAT", "text").lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"FLAGGING_LOG_FORMAT must be text or json, not {log_format!r}")

    database_timeout = _float(get("FLAGGING_DATABASE_TIMEOUT", "10"), "FLAGGING_DATABASE_TIMEOUT")
    if not 0 < database_timeout < float("inf"):
        raise ConfigError("FLAGGING_DATABASE_TIMEOUT must be a number of seconds above 0")

    return Settings(
        env=env,
        instance_path=instance,
        database_url=database_url,
        database_timeout=database_timeout,
        secret_key=secret_key,
        http_host=get("FLAGGING_HTTP_HOST", "127.0.0.1"),
        http_port=_int(get("FLAGGING_HTTP_PORT", "8000"), "FLAGGING_HTTP_PORT"),
        mllp_host=get("FLAGGING_MLLP_HOST", "127.0.0.1"),
        mllp_port=_int(get("FLAGGING_MLLP_PORT", "2575"), "FLAGGING_MLLP_PORT"),
        mllp_max_connections=max_connections,
        mllp_idle_timeout=_float(
            get("FLAGGING_MLLP_IDLE_TIMEOUT", "300"), "FLAGGING_MLLP_IDLE_TIMEOUT"
        ),
        mllp_frame_deadline=frame_deadline,
        mllp_max_connections_per_address=per_address,
        mllp_reserved_connections=reserved,
        mllp_reserved_networks=reserved_networks,
        mllp_tls_cert=tls_cert,
        mllp_tls_key=tls_key,
        mllp_tls_client_ca=client_ca,
        push_tls_ca=get("FLAGGING_PUSH_TLS_CA"),
        push_tls_cert=push_cert,
        push_tls_key=push_key,
        max_message_bytes=max_bytes,
        fallback_charset=fallback,
        processing_ids=processing_ids,
        application_name=get("FLAGGING_APPLICATION_NAME", "FLAGGING"),
        facility_name=get("FLAGGING_FACILITY_NAME", "FLAGGING"),
        log_level=get("FLAGGING_LOG_LEVEL", "INFO").upper(),
        log_format=log_format,
        trusted_user_header=get("FLAGGING_TRUSTED_USER_HEADER"),
        session_hours=_int(get("FLAGGING_SESSION_HOURS", "8"), "FLAGGING_SESSION_HOURS"),
        mesh_url=mesh["url"],
        mesh_mailbox=mesh["mailbox"].upper(),
        mesh_password=mesh["password"],
        mesh_shared_key=mesh["shared_key"],
        mesh_cert=mesh["cert"],
        mesh_key=mesh["key"],
        mesh_ca_cert=mesh["ca_cert"],
        **_operations(get, instance),
    )


def _operations(get: Callable[[str, str], str], instance: Path) -> dict[str, Any]:
    """The settings of running the service: processes, metrics, retention and alert rules."""
    positive = {
        "FLAGGING_WEB_WORKERS": _int(get("FLAGGING_WEB_WORKERS", "2"), "FLAGGING_WEB_WORKERS"),
        "FLAGGING_WEB_THREADS": _int(get("FLAGGING_WEB_THREADS", "4"), "FLAGGING_WEB_THREADS"),
    }
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1")
    retention = _int(get("FLAGGING_RETENTION_DAYS", "0"), "FLAGGING_RETENTION_DAYS")
    if retention < 0:
        raise ConfigError("FLAGGING_RETENTION_DAYS must be 0 (keep for ever) or more")
    hours = get("FLAGGING_ALERT_WORKING_HOURS", "8-18")
    try:
        start, end = (int(h) for h in hours.split("-"))
    except ValueError:
        raise ConfigError(
            f"FLAGGING_ALERT_WORKING_HOURS must be two hours like 8-18, not {hours!r}"
        ) from None
    if not 0 <= start < end <= 24:
        raise ConfigError(f"FLAGGING_ALERT_WORKING_HOURS {hours!r} is not a span of a day")
    metrics_dir = get("FLAGGING_METRICS_DIR", "")
    return {
        "web_workers": positive["FLAGGING_WEB_WORKERS"],
        "web_threads": positive["FLAGGING_WEB_THREADS"],
        "metrics_token": get("FLAGGING_METRICS_TOKEN", ""),
        "metrics_dir": Path(metrics_dir).resolve() if metrics_dir else instance / "metrics",
        "retention_days": retention,
        "alert_silence_factor": _float(
            get("FLAGGING_ALERT_SILENCE_FACTOR", "3"), "FLAGGING_ALERT_SILENCE_FACTOR"
        ),
        "alert_working_hours": (start, end),
        "alert_push_failing_minutes": _int(
            get("FLAGGING_ALERT_PUSH_FAILING_MINUTES", "30"), "FLAGGING_ALERT_PUSH_FAILING_MINUTES"
        ),
        "alert_quarantine_growth": _int(
            get("FLAGGING_ALERT_QUARANTINE_GROWTH", "10"), "FLAGGING_ALERT_QUARANTINE_GROWTH"
        ),
    }


def _instance_secret(instance: Path) -> str:
    """Return the development secret kept in the instance folder, creating it once."""
    path = instance / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key

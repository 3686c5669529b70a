"""One frozen settings object, each environment variable mapped explicitly with type and default.

The web app, the MLLP listener, the scheduler and Alembic all read settings through
`load_settings()`; Flask's `app.config` is filled from it, never the reverse.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    secret_key: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_max_connections: int = 64
    mllp_idle_timeout: float = 300.0
    mllp_tls_cert: str = ""
    mllp_tls_key: str = ""
    max_message_bytes: int = 16 * MIB
    # Used when MSH-18 is empty and the bytes are not valid UTF-8 (many UK feeds send
    # Windows-1252 without saying so).
    fallback_charset: str = "windows-1252"
    # MSH-11 values accepted (table 0103: P production, T training, D debugging).
    processing_ids: tuple[str, ...] = ("P", "T", "D")
    # Our own identity in ACKs when the sender left MSH-5/6 empty.
    application_name: str = "FLAGGING"
    facility_name: str = "FLAGGING"
    log_level: str = "INFO"
    # Single sign-on in a reverse proxy: the request header that names the signed-in user
    # (e.g. X-Remote-User). Empty (the default) turns the mode off. Only for a proxy that
    # strips the header from what clients send.
    trusted_user_header: str = ""
    # How long a clinician's or administrator's sign-in lasts.
    session_hours: int = 8
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

    tls_cert, tls_key = get("FLAGGING_MLLP_TLS_CERT"), get("FLAGGING_MLLP_TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("FLAGGING_MLLP_TLS_CERT and FLAGGING_MLLP_TLS_KEY must be set together")

    processing_ids = tuple(
        p.strip().upper() for p in get("FLAGGING_PROCESSING_IDS", "P,T,D").split(",") if p.strip()
    )
    fallback = get("FLAGGING_FALLBACK_CHARSET", "windows-1252")
    try:
        "".encode(fallback)
    except LookupError:
        raise ConfigError(f"FLAGGING_FALLBACK_CHARSET {fallback!r} is not a known codec") from None

    max_bytes = _int(get("FLAGGING_MAX_MESSAGE_BYTES", str(16 * MIB)), "FLAGGING_MAX_MESSAGE_BYTES")
    if max_bytes < 1024:
        raise ConfigError("FLAGGING_MAX_MESSAGE_BYTES must be at least 1024")

    return Settings(
        env=env,
        instance_path=instance,
        database_url=database_url,
        secret_key=secret_key,
        http_host=get("FLAGGING_HTTP_HOST", "127.0.0.1"),
        http_port=_int(get("FLAGGING_HTTP_PORT", "8000"), "FLAGGING_HTTP_PORT"),
        mllp_host=get("FLAGGING_MLLP_HOST", "127.0.0.1"),
        mllp_port=_int(get("FLAGGING_MLLP_PORT", "2575"), "FLAGGING_MLLP_PORT"),
        mllp_max_connections=_int(
            get("FLAGGING_MLLP_MAX_CONNECTIONS", "64"), "FLAGGING_MLLP_MAX_CONNECTIONS"
        ),
        mllp_idle_timeout=_float(
            get("FLAGGING_MLLP_IDLE_TIMEOUT", "300"), "FLAGGING_MLLP_IDLE_TIMEOUT"
        ),
        mllp_tls_cert=tls_cert,
        mllp_tls_key=tls_key,
        max_message_bytes=max_bytes,
        fallback_charset=fallback,
        processing_ids=processing_ids,
        application_name=get("FLAGGING_APPLICATION_NAME", "FLAGGING"),
        facility_name=get("FLAGGING_FACILITY_NAME", "FLAGGING"),
        log_level=get("FLAGGING_LOG_LEVEL", "INFO").upper(),
        trusted_user_header=get("FLAGGING_TRUSTED_USER_HEADER"),
        session_hours=_int(get("FLAGGING_SESSION_HOURS", "8"), "FLAGGING_SESSION_HOURS"),
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

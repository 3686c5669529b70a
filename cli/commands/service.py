"""The processes: `serve`, `mllp`, `web`, `scheduler`, and `db upgrade`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from cli import demo, scheduler
from cli.commands.common import CommandError, Parser, long_running, services
from cli.telemetry_setup import telemetry_setup
from cli.wiring import mllp_listener, web_app
from config import Settings, load_settings
from flagging import bindings
from flagging.storage.engine import Database
from flagging.storage.migrate import upgrade


def cmd_serve(args: argparse.Namespace) -> int:
    """Web app and MLLP listener in one process (the trial and small-trust mode)."""
    settings = load_settings()
    if settings.is_production:
        check_mllp_exposure(settings, settings.mllp_host)
    wired = long_running(ingest=True)
    if not settings.is_production:
        upgrade(wired.db.engine)
    if args.demo:
        demo.load_if_empty(wired)
    from werkzeug.serving import make_server

    web = make_server(settings.http_host, settings.http_port, web_app(wired), threaded=True)
    listener = mllp_listener(wired)
    print(
        f"flagging: web on http://{settings.http_host}:{web.server_port}, "
        f"MLLP on {listener.address[0]}:{listener.address[1]}, "
        f"database {wired.db.engine.url.render_as_string(hide_password=True)}",
        file=sys.stderr,
        flush=True,
    )
    listener.start()
    threading.Thread(target=web.serve_forever, name="http", daemon=True).start()
    jobs = scheduler.start(wired)
    _wait_for_signal()
    jobs.shutdown()
    listener.stop()
    web.shutdown()
    return 0


def cmd_mllp(args: argparse.Namespace) -> int:
    """The MLLP listener alone (run as many as needed in production)."""
    settings = load_settings()
    check_mllp_exposure(settings, settings.mllp_host)
    wired = long_running(ingest=True)
    listener = mllp_listener(wired, port=args.port)
    host, port = listener.address
    # Printed before the accept thread logs anything, so scripts can read the port reliably.
    print(f"flagging: MLLP on {host}:{port}", file=sys.stderr, flush=True)
    listener.start()
    _wait_for_signal()
    listener.stop()
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """The web app under gunicorn (production): FLAGGING_WEB_WORKERS processes."""
    from cli import web

    settings = load_settings()
    logging.getLogger().setLevel(settings.log_level)
    telemetry_setup(settings)
    web.run(settings, workers=args.workers or settings.web_workers, port=args.port)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """The scheduled jobs alone (review-window release, expiry, push, retention)."""
    if args.once:
        wired = services()
        for name, job, _ in scheduler.JOBS:
            print(f"{name}: {job(wired)}")
        return 0
    wired = long_running()
    jobs = scheduler.start(wired)
    print("flagging: scheduler running", file=sys.stderr, flush=True)
    _wait_for_signal()
    jobs.shutdown()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    wired = services()
    upgrade(wired.db.engine)
    print("database is at the newest revision")
    return 0


def check_mllp_exposure(settings: Settings, host: str) -> None:
    """Production refuses an MLLP listener that anyone on the network could speak to as a
    sender: on a non-loopback address, while a sender has no binding and client
    certificates are not required. (Such a sender's messages would be refused anyway; the
    point is to find the mistake at start, not at the first message.) Checked before the
    process starts anything else."""
    if not settings.is_production or settings.mllp_tls_client_ca:
        return
    if bindings.is_loopback_host(host):
        return
    db = Database(settings)
    try:
        with db.reading() as session:
            unbound = bindings.unbound_senders(session)
    finally:
        db.dispose()
    if unbound:
        raise CommandError(
            f"refusing to listen for MLLP on {host or 'every address'}: senders "
            f"{', '.join(unbound)} have no network or certificate binding and "
            "FLAGGING_MLLP_TLS_CLIENT_CA is not set (flagging senders set ODS --allow-network CIDR)"
        )


def register(cli: Parser) -> None:
    """Add serve, web, mllp, scheduler and db."""
    command, group, sub = cli.command, cli.group, cli.sub
    serve = command(sub, "serve", cmd_serve, "run the web app and MLLP listener in one process")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load the demo trust, practice and examples into an empty database",
    )
    web = command(sub, "web", cmd_web, "run the web app under gunicorn (production)")
    web.add_argument("--workers", type=int, help="override FLAGGING_WEB_WORKERS")
    web.add_argument("--port", type=int, help="override FLAGGING_HTTP_PORT (0: any free port)")
    mllp = command(sub, "mllp", cmd_mllp, "run the MLLP listener alone")
    mllp.add_argument("--port", type=int, help="override FLAGGING_MLLP_PORT (0: any free port)")

    sched = command(sub, "scheduler", cmd_scheduler, "run the scheduled jobs")
    sched.add_argument("--once", action="store_true", help="run each job once and exit")

    db = group("db", "database schema")
    command(db, "upgrade", cmd_db_upgrade, "apply the migrations")

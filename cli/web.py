"""`flagging web`: the web app under gunicorn, the production web server.

gunicorn's master binds the socket and forks the workers; each worker builds its own wiring
(database engine, handler) after the fork, because a connection pool must never be shared
between processes. The master prints the address it bound, as `flagging mllp` does, so that
scripts (and the production-layout test) can start it on port 0.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from cli.wiring import Services, build, web_app
from config import Settings


class WebServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn configured from our settings, not from a gunicorn.conf.py or its command line."""

    def __init__(self, settings: Settings, *, workers: int, port: int | None = None) -> None:
        self.settings = settings
        self.workers = workers
        self.port = settings.http_port if port is None else port
        self._services: Services | None = None
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self.settings.http_host}:{self.port}",
            "workers": self.workers,
            # Threads let a worker answer /healthz while another request waits on the database.
            "worker_class": "gthread",
            "threads": self.settings.web_threads,
            "timeout": 60,
            "graceful_timeout": 20,
            # gunicorn's own log of requests would name patients in URLs (NHS numbers in the
            # worklist's query string): off, the app logs what it needs itself.
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "proc_name": "flagging-web",
            "when_ready": _announce,
            "child_exit": _child_exit,
            "worker_exit": self._worker_exit,
        }
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn 25+'s control socket sits in the home folder: two servers on a machine
            # would share it. We manage the processes with signals, as a service manager does.
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self._services is not None:
            self._services.close()

    def load(self) -> Any:
        # gunicorn calls this in each worker after the fork (no preload_app): see the docstring.
        self._services = build(self.settings)
        return web_app(self._services)


def _announce(server: Any) -> None:
    host, port = server.LISTENERS[0].sock.getsockname()[:2]
    print(f"flagging: web on http://{host}:{port}", file=sys.stderr, flush=True)


def _child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges must not be summed any more (prometheus_client multiprocess).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def run(settings: Settings, *, workers: int, port: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT (gunicorn's master handles the signals)."""
    WebServer(settings, workers=workers, port=port).run()

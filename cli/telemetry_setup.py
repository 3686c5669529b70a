"""Point prometheus_client's multiprocess mode at this machine's metrics folder.

Every server command (serve, web, mllp, scheduler) calls this before any metric exists in its
process, so the counters of gunicorn's workers and of every listener on the machine land in one
folder that /metrics adds up. PROMETHEUS_MULTIPROC_DIR, when the operator set it, wins over
FLAGGING_METRICS_DIR. The folder is never emptied by a process: several start and stop
independently, and counters that survive a restart are what Prometheus expects of counters.
"""

from __future__ import annotations

import os

from config import Settings


def telemetry_setup(settings: Settings) -> str:
    """Create the folder and export it to this process and its children; returns its path."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(settings.metrics_dir)
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder

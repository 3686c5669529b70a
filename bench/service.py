"""Starting and stopping the service under test, shared by the benches (ingest.py, fuzz.py).

A bench prepares a fresh database with the service's own CLI (`flagging db upgrade`, `senders
add`, `practices add`), starts `flagging mllp` or `flagging serve` as a subprocess on 127.0.0.1
with a throw-away instance folder, reads its address from what it writes to stderr, and stops it
with SIGTERM (then SIGKILL) however the bench ends.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGGING = str(ROOT / ".venv" / "bin" / "flagging")
PYTHON = str(ROOT / ".venv" / "bin" / "python")

# Runs several `flagging` commands through the CLI's own main() in one process: registering a
# hundred practices then costs one interpreter start instead of a hundred (~2 s each here).
_CLI_BATCH = """
import json, sys
from cli.main import main
for argv in json.loads(sys.argv[1]):
    if main(argv) != 0:
        sys.exit("flagging " + " ".join(argv) + " failed")
"""


def service_env(instance: Path, database_url: str = "", **extra: str) -> dict[str, str]:
    """The environment of a throw-away service: no FLAGGING_* of the caller's leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGGING_")}
    env.update(
        FLAGGING_INSTANCE_PATH=str(instance),
        FLAGGING_ENV="test",
        FLAGGING_SECRET_KEY="x",  # noqa: S106 (a throw-away test instance)
        FLAGGING_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["FLAGGING_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(env: dict[str, str], commands: Sequence[Sequence[str]]) -> str:
    """Run `flagging` commands one after the other in one process; return their stdout."""
    done = subprocess.run(
        [PYTHON, "-c", _CLI_BATCH, json.dumps([list(c) for c in commands])],
        env=env,
        cwd=tempfile.gettempdir(),  # not ROOT: `-c` puts the cwd first, before PYTHONPATH's tree
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{done.stderr.strip()}\n{done.stdout.strip()}")
    return done.stdout + done.stderr


def prepare(env: dict[str, str], sender: str, practices: Sequence[str], name: str) -> str:
    """Migrate the database and register the sender and practices, as an operator would with
    the CLI; return what the commands printed (the sender's HTTP token is in it)."""
    commands = [["db", "upgrade"], ["senders", "add", sender, "--name", name]]
    commands += [["practices", "add", code, "--name", name] for code in practices]
    return run_cli(env, commands)


class ServiceProcess:
    """A server subprocess whose stderr names its address; stopped with terminate, then kill.

    `addresses` are patterns tried in order on everything written to stderr so far; the first
    that matches says the server is up, and `match` keeps it (the address in its groups). Our
    service prints its banner with print() while the accept thread logs "MLLP listener on H:P"
    at the same moment, and the two writes can interleave ("...on 127.0.0.1:35665" + log line
    + "\\n"): the log line, written in one piece, is then the reliable source of the port.
    Every stderr line is kept in `tail` (the last 20) and given to `on_line` if there is one.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        addresses: list[str],
        *,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.match: re.Match[str] | None = None
        self.tail: deque[str] = deque(maxlen=20)
        self._addresses = [re.compile(a) for a in addresses]
        self._on_line = on_line
        self._started = threading.Event()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=tempfile.gettempdir(),  # as in run_cli: a tree on PYTHONPATH runs all of its code
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def wait_ready(self, timeout: float = 60) -> ServiceProcess:
        """Block until the address is known; stop the process and raise if it never is."""
        if not self._started.wait(timeout) or self.match is None:
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n" + "".join(self.tail))
        return self

    @property
    def address(self) -> tuple[str, int]:
        """The first (host, port) the banner named."""
        assert self.match is not None
        return self.match.group(1), int(self.match.group(2))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        seen: list[str] = []
        for line in self.proc.stderr:
            self.tail.append(line)
            if self._on_line is not None:
                self._on_line(line)
            if self.match is not None:
                continue
            seen.append(line)
            text = "".join(seen)
            for pattern in self._addresses:
                match = pattern.search(text)
                if match and 0 < int(match.group(2)) < 65536:
                    self.match = match
                    self._started.set()
                    break
        self._started.set()  # the process ended

    def _family(self) -> list[Path]:
        """The /proc folders of the process and of its children (our SQLite writer)."""
        pid = str(self.proc.pid)
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if stat.parent.name == pid or ppid == pid:
                found.append(stat.parent)
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the process and its children; Linux /proc, else 0."""
        total = 0.0
        for proc in self._family():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def rss_mib(self) -> tuple[float, float]:
        """Resident memory of the process and of its children together, in MiB."""
        own = children = 0
        for proc in self._family():
            try:
                text = (proc / "status").read_text()
            except OSError:
                continue
            rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            if rss is None:
                continue
            if proc.name == str(self.proc.pid):
                own = int(rss.group(1))
            else:
                children += int(rss.group(1))
        return own / 1024, children / 1024

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_all(starters: Sequence[Callable[[], ServiceProcess]]) -> list[ServiceProcess]:
    """Start several servers at once and wait for all; on failure stop those that started."""
    started = []
    try:
        for start in starters:
            started.append(start())
        for server in started:
            server.wait_ready()
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that the benches' `finally` blocks stop what they
    started and remove their folders and databases."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))

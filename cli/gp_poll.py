"""The reference GP client: polls a practice's feed and files each document with its visibility.

What a GP system supplier reads first; the standard library only, so it runs anywhere.

    flagging gp-poll --url http://127.0.0.1:8000 --token TOKEN --practice A81001 --out DIR

writes, under DIR:
    position.json                          {"after": N}: the last event filed (next `after`)
    events.jsonl                           every event filed, one JSON object a line, in order
    documents/ID/document.json             the document's metadata, as of its latest event
    documents/ID/visibility.json           the current version's visibility and its number
                                           (`current_version`): hide unless show_to_patient
    documents/ID/versions/N/version.json   each version's own metadata (an addendum does not
                                           overwrite the original: every version is filed)
    documents/ID/versions/N/visibility.json  that version's visibility
    documents/ID/versions/N/content.EXT    that version's rendition (text, PDF...)

A withdrawn document (`document.withdrawn`: the hospital cancelled it) is filed as withdrawn
in every version, never to be shown, and its renditions are removed.

Each event is filed, then the position moves past it (written atomically), so a client that
stops anywhere and runs again files no event twice and misses none. After each page it
acknowledges receipt to the service.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PAGE = 500
USER_AGENT = "flagging-gp-poll/1"


class PollError(Exception):
    """The service could not be read (network, authentication, an unexpected answer)."""


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a reader (or a crash) sees the old content or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def _write_json(path: Path, data: Any) -> None:
    _write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


class GPClient:
    """Polls one practice's feed and files what it receives into a folder."""

    def __init__(
        self,
        url: str,
        token: str,
        practice: str,
        out: Path,
        *,
        timeout: float = 30.0,
        acknowledge: bool = True,
    ) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.practice = practice.strip().upper()
        self.out = Path(out)
        self.timeout = timeout
        self.acknowledge = acknowledge
        self.out.mkdir(parents=True, exist_ok=True)
        self._last_logged = self._read_last_logged()

    # Position -------------------------------------------------------------------------------

    @property
    def position_file(self) -> Path:
        return self.out / "position.json"

    def position(self) -> int:
        try:
            return int(json.loads(self.position_file.read_text())["after"])
        except FileNotFoundError:
            return 0

    def _read_last_logged(self) -> int:
        """The last event in events.jsonl: one filed before a stop that came before the
        position was saved is filed again (the files are the same) but not logged twice."""
        try:
            lines = (self.out / "events.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return 0
        return int(json.loads(lines[-1])["seq"]) if lines else 0

    def _save_position(self, after: int) -> None:
        _write_json(self.position_file, {"after": after, "practice": self.practice})

    # HTTP -----------------------------------------------------------------------------------

    def _request(self, path: str, *, body: Any = None, allow_404: bool = False) -> Response:
        url = path if path.startswith("http") else self.base + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the operator gives an http(s) URL
            url,
            data=data,
            method="POST" if data is not None else "GET",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "*/*",
                "User-Agent": USER_AGENT,
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                return Response(answer.status, answer.headers.get_content_type(), answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and allow_404:
                return Response(404, "", b"")
            detail = ""
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(exc.read()).get("detail", "")
            raise PollError(f"{url}: HTTP {exc.code} {detail}".strip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PollError(f"{url}: {reason}") from None

    def _practice_path(self) -> str:
        return f"/gp/v1/practices/{urllib.parse.quote(self.practice, safe='')}"

    # Filing ---------------------------------------------------------------------------------

    def file_event(self, event: dict[str, Any]) -> None:
        """File one event: the version's metadata and content when new, its visibility, and
        the document's current state."""
        folder = self.out / "documents" / str(int(event["document_id"]))
        document_path = event["document"]
        version = int(event["version"])
        version_folder = folder / "versions" / str(version)
        metadata = self._request(f"{document_path}?version={version}").json()
        if event["type"] in ("document.available", "document.superseded"):
            answer = self._request(f"{document_path}/content?version={version}", allow_404=True)
            if answer.status == 200:
                extension = mimetypes.guess_extension(answer.content_type) or ".bin"
                for old in version_folder.glob("content.*"):
                    if old.suffix != extension:
                        old.unlink()
                _write_atomic(version_folder / f"content{extension}", answer.body)
        _write_json(version_folder / "version.json", metadata)
        withdrawn = event["type"] == "document.withdrawn" or metadata["status"] == "withdrawn"
        visibility = self._visibility(event, metadata, withdrawn=withdrawn)
        _write_json(version_folder / "visibility.json", visibility)
        current = self._current_version(folder)
        if version >= current:
            _write_json(folder / "document.json", metadata)
            _write_json(folder / "visibility.json", {**visibility, "current_version": version})
        if withdrawn:
            self._withdraw(folder, visibility)
        if event["seq"] > self._last_logged:
            with open(self.out / "events.jsonl", "a") as log_file:
                log_file.write(json.dumps(event, sort_keys=True) + "\n")
            self._last_logged = event["seq"]

    @staticmethod
    def _visibility(
        event: dict[str, Any], metadata: dict[str, Any], *, withdrawn: bool
    ) -> dict[str, Any]:
        """What a version's visibility.json says. Filed in feed order, the visibility of a
        version's last event is its current one; the decision's details come with it when the
        metadata is of that same state."""
        current = metadata["visibility"]
        same = current["status"] == event["visibility"]
        status = event["visibility"]
        if withdrawn:
            # Never shown, whatever the event said: a cancelled document was entered in error.
            status = "withheld"
        return {
            **(current if same else {}),
            "status": status,
            "show_to_patient": status == "visible" and not withdrawn,
            "withdrawn": withdrawn,
            "document_status": "withdrawn" if withdrawn else metadata["status"],
            "seq": event["seq"],
            "version": event["version"],
        }

    @staticmethod
    def _current_version(folder: Path) -> int:
        try:
            return int(json.loads((folder / "visibility.json").read_text())["current_version"])
        except (FileNotFoundError, KeyError, ValueError):
            return 0

    @staticmethod
    def _withdraw(folder: Path, visibility: dict[str, Any]) -> None:
        """Every version of a withdrawn document: filed as withdrawn, hidden, text removed."""
        for version_folder in (folder / "versions").iterdir():
            path = version_folder / "visibility.json"
            try:
                filed = json.loads(path.read_text())
            except FileNotFoundError:
                filed = {}
            _write_json(
                path,
                {
                    **filed,
                    "status": "withheld",
                    "show_to_patient": False,
                    "withdrawn": True,
                    "document_status": "withdrawn",
                    "reason": visibility.get("reason", "withdrawn"),
                    "reason_text": visibility.get("reason_text", ""),
                },
            )
            for content in version_folder.glob("content.*"):
                content.unlink()

    def poll_once(self, limit: int = PAGE) -> int:
        """Read and file every waiting event (page after page); returns how many were filed."""
        filed = 0
        while True:
            after = self.position()
            page = self._request(f"{self._practice_path()}/feed?after={after}&limit={limit}").json()
            for event in page["events"]:
                if event["seq"] != after + 1:
                    raise PollError(f"expected event {after + 1}, the service sent {event['seq']}")
                self.file_event(event)
                after = event["seq"]
                self._save_position(after)
                filed += 1
            if page["events"] and self.acknowledge:
                self._request(f"{self._practice_path()}/acknowledgements", body={"up_to": after})
            if not page["more"]:
                return filed

    def run(
        self,
        stop: threading.Event,
        *,
        interval: float = 60.0,
        max_interval: float = 600.0,
    ) -> None:
        """Poll until `stop` is set: every `interval` seconds, backing off while the service
        cannot be reached."""
        delay = interval
        while not stop.is_set():
            try:
                filed = self.poll_once()
                delay = interval
                if filed:
                    log.info("filed %d events; position %d", filed, self.position())
            except PollError as exc:
                log.warning("poll failed, retrying in %.0fs: %s", delay, exc)
                delay = min(delay * 2, max_interval)
            stop.wait(delay)


def main(
    url: str,
    token: str,
    practice: str,
    out: str,
    *,
    once: bool,
    interval: float,
) -> int:
    """The `flagging gp-poll` command."""
    client = GPClient(url, token, practice, Path(out))
    if once:
        filed = client.poll_once()
        print(f"{filed} events filed; position {client.position()}")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    client.run(stop, interval=interval)
    print(f"stopped after {time.monotonic() - started:.0f}s; position {client.position()}")
    return 0

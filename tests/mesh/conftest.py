"""A local MESH server for the MESH tests: NHS England's mesh-sandbox in a process of its
own on a loopback port (tests/mesh/sandbox_server.py), with its mailboxes in a temporary
folder, started and stopped by each test that uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mesh_client import MeshClient

from mesh.client import MeshConfig

SHARED_KEY = "TestKey"
PASSWORD = "password"  # the sandbox's file store gives every mailbox this password
OUR_MAILBOX = "RXXOT001"
SERVER = Path(__file__).with_name("sandbox_server.py")


class MeshServer:
    """The sandbox process: its address, a fault switch, and stop and start again."""

    def __init__(self, folder: Path, mailboxes: tuple[str, ...]) -> None:
        self.folder = folder
        for mailbox in mailboxes:
            (folder / mailbox).mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "AUTH_MODE": "full",
            "STORE_MODE": "file",
            "SHARED_KEY": SHARED_KEY,
            "MAILBOXES_DATA_DIR": str(self.folder),
        }
        log = (self.folder.parent / "mesh-sandbox.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=self.folder.parent,
        )
        log.close()
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/messageexchange/_ping", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the MESH sandbox did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def fault(self, status: int, path: str = "") -> None:
        """Answer every request (whose path contains `path`) with `status` from now on
        (0: answer normally again)."""
        requests.post(
            f"{self.url}/_fault", params={"status": status, "path": path}, timeout=5
        ).raise_for_status()

    def config(self) -> MeshConfig:
        """Our side's settings for this server."""
        return MeshConfig(self.url, OUR_MAILBOX, PASSWORD, SHARED_KEY, timeout=10)

    def client(self, mailbox: str) -> MeshClient:
        """A MESH client for a mailbox, as a practice's system would use it."""
        return MeshClient(
            self.url, mailbox, PASSWORD, shared_key=SHARED_KEY.encode(), max_retries=0, timeout=10
        )


PRACTICE_MAILBOXES = ("A81001OT01", "B82002OT01")


@pytest.fixture
def mesh_server(tmp_path: Path) -> Iterator[MeshServer]:
    server = MeshServer(tmp_path / "mailboxes", (OUR_MAILBOX, *PRACTICE_MAILBOXES))
    server.start()
    yield server
    server.stop()


def inbox(
    server: MeshServer, mailbox: str, *, acknowledge: bool = False
) -> list[tuple[str, dict[str, str], bytes]]:
    """Everything in a mailbox, in the order MESH hands it out: (message id, headers, body).
    Left in the mailbox unless `acknowledge`, as a practice's system does once it has filed."""
    with server.client(mailbox) as client:
        out = []
        for message_id in client.list_messages():
            message = client.retrieve_message(message_id)
            try:
                out.append((message_id, dict(message.mex_headers()), message.read()))
            finally:
                message.close()
            if acknowledge:
                client.acknowledge_message(message_id)
        return out


ITK_RESPONSE_CODES = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1"


def itk_response(answers: str, code: str, itk_code: str, display: str) -> bytes:
    """An ITK3 response as a practice's system sends it (ITK3-Messaging-Distribution,
    explore_response_structure): MessageHeader.response names the MessageHeader answered."""
    from fhir.resources.R4B.bundle import Bundle

    header, outcome = str(uuid.uuid4()), str(uuid.uuid4())
    ok = code == "ok"
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "message",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{header}",
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": header,
                    "eventCoding": {
                        "system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2",
                        "code": "ITK002M",
                        "display": "ITK Response",
                    },
                    "source": {"endpoint": "urn:nhs-uk:addressing:ods:A81001"},
                    "response": {"identifier": answers, "code": code},
                    "focus": [{"reference": f"urn:uuid:{outcome}"}],
                },
            },
            {
                "fullUrl": f"urn:uuid:{outcome}",
                "resource": {
                    "resourceType": "OperationOutcome",
                    "id": outcome,
                    "issue": [
                        {
                            "severity": "information" if ok else "fatal",
                            "code": "informational" if ok else "not-found",
                            "details": {
                                "coding": [
                                    {
                                        "system": ITK_RESPONSE_CODES,
                                        "code": itk_code,
                                        "display": display,
                                    }
                                ]
                            },
                        }
                    ],
                },
            },
        ],
    }
    Bundle.model_validate(bundle)
    return json.dumps(bundle).encode()

"""NHS England's MESH sandbox (the `mesh-sandbox` package) on a loopback port, for the tests.

Run as a script by tests/mesh/conftest.py: it binds 127.0.0.1 on a free port, prints the port,
and serves until it is terminated. Mailboxes are the folders of MAILBOXES_DATA_DIR (the
sandbox's file store makes one mailbox per folder, password "password"), and messages are kept
there, so a server started again on the same folder still holds what it was sent.

A fault switch sits in front of the sandbox so that a test can make the server answer with an
error status for a while: POST /_fault?status=500 turns it on for every request,
/_fault?status=500&path=outbox only for requests whose path contains "outbox", ?status=0 off.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn


def main() -> None:
    # Imported here: the sandbox reads its settings (AUTH_MODE, STORE_MODE, SHARED_KEY,
    # MAILBOXES_DATA_DIR) from the environment when it is first imported.
    from mesh_sandbox.api import app as sandbox

    fault: dict[str, Any] = {"status": 0, "path": ""}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_fault":
            query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
            fault["status"] = int(query.get("status", "0"))
            fault["path"] = query.get("path", "")
            await _answer(send, 200, b"{}")
            return
        if scope["type"] == "http" and fault["status"] and fault["path"] in scope["path"]:
            # What a load balancer in front of MESH says: no MESH error code in it.
            await _answer(send, fault["status"], b'{"message": "injected fault"}')
            return
        await sandbox(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    main()

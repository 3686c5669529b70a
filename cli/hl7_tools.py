"""`flagging messages validate FILE...` and the field listing of `messages show --fields`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hl7 import inspect


def split_messages(data: bytes) -> list[bytes]:
    """The messages of a file: each starts at a line beginning with MSH (batch files hold many)."""
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    messages: list[list[bytes]] = []
    for line in lines:
        if line.lstrip(b"\xef\xbb\xbf").startswith(b"MSH"):
            messages.append([])
        if messages and line.strip():
            messages[-1].append(line)
    return [b"\r".join(m) + b"\r" for m in messages]


def cmd_validate(args: argparse.Namespace) -> int:
    """Structure validation for integration teams before go-live; exit 1 on any error."""
    results: list[dict[str, Any]] = []
    failed = False
    for name in args.files:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            results.append({"file": name, "message": 0, "issues": [], "error": exc.strerror})
            failed = True
            continue
        found = split_messages(data) or [data]
        for number, raw in enumerate(found, start=1):
            issues = inspect.validate(raw)
            errors = [i for i in issues if i.severity == "error"]
            failed = failed or bool(errors)
            results.append({"file": name, "message": number, "issues": [asdict(i) for i in issues]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            label = f"{result['file']}" + (
                f" #{result['message']}" if result["message"] > 1 else ""
            )
            if result.get("error"):
                print(f"{label}: cannot read: {result['error']}")
                continue
            listed = result["issues"]
            count = sum(1 for i in listed if i["severity"] == "error")
            print(
                f"{label}: {'ok' if not count else 'INVALID'} ({count} errors, "
                f"{len(listed) - count} warnings)"
            )
            for issue in listed:
                where = f"{issue['location']} {issue['name']}".strip()
                print(f"  {issue['severity']}: {where + ': ' if where else ''}{issue['text']}")
    return 1 if failed else 0


def fields_listing(raw: bytes) -> list[dict[str, object]]:
    """Every segment and field with its HL7 name (for `messages show --fields`)."""
    return [
        {
            "segment": view.code,
            "name": view.name,
            "fields": [asdict(f) for f in view.fields],
        }
        for view in inspect.inspect(raw)
    ]


def print_fields(raw: bytes) -> None:
    for view in inspect.inspect(raw):
        print(f"{view.code}  {view.name}".rstrip())
        for field in view.fields:
            print(f"  {field.location:<10} {field.name:<36} {field.value}")

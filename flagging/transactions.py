"""What an edge may ask of the storage: a write transaction, or a session that only reads.

The edges (api, hl7, mesh) type the object that opens their transactions with this protocol,
so that they never import the storage package (an import-linter contract): the composition
root (cli) builds the one `flagging.storage.engine.Database` of a process and hands it over.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session


class Transactions(Protocol):
    @property
    def engine(self) -> Engine:
        """The engine, for a readiness check's connection of its own."""
        ...

    def transaction(self) -> AbstractContextManager[Session]:
        """A session committed when the block ends without error, rolled back otherwise."""
        ...

    def reading(self, *, snapshot: bool = True) -> AbstractContextManager[Session]:
        """A session for reads only, rolled back at the end."""
        ...

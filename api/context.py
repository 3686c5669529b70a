"""Access to the process's wiring from inside a request."""

from __future__ import annotations

from typing import cast

from flask import current_app

from config import Settings
from flagging.transactions import Transactions


def database() -> Transactions:
    return cast(Transactions, current_app.extensions["flagging.db"])


def settings() -> Settings:
    return cast(Settings, current_app.extensions["flagging.settings"])

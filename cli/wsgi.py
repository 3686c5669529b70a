"""WSGI entry point for a production server: `gunicorn 'cli.wsgi:application()'`."""

from __future__ import annotations

from flask import Flask

from cli.wiring import build, web_app
from config import load_settings


def application() -> Flask:
    return web_app(build(load_settings()))

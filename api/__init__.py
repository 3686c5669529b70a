"""The Flask edge: create_app, one blueprint per audience, problem responses."""

from api.app import create_app

__all__ = ["create_app"]

"""Marshmallow schemas of the API boundary, one module per resource."""

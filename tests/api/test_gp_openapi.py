"""The OpenAPI document is served, and schemathesis finds no server error and no response that
breaks it, with a valid token for a practice that has documents of every kind."""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests import samples
from tests.api.conftest import GPWorld

SPEC = "/gp/v1/openapi.json"
# Examples per operation and generation mode: enough to find the usual mistakes (a 500 on
# an odd parameter, an undocumented status or media type), small enough to run in seconds.
EXAMPLES = 30


def test_openapi_document_is_served_without_a_token(client: FlaskClient) -> None:
    response = client.get(SPEC)

    assert response.status_code == 200
    spec = response.json
    assert spec is not None
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {
        "/gp/v1/practices/{ods_code}/feed",
        "/gp/v1/practices/{ods_code}/documents/{document_id}",
        "/gp/v1/practices/{ods_code}/documents/{document_id}/hl7v2",
        "/gp/v1/practices/{ods_code}/documents/{document_id}/fhir",
        "/gp/v1/practices/{ods_code}/documents/{document_id}/content",
        "/gp/v1/practices/{ods_code}/acknowledgements",
    } <= set(spec["paths"])
    feed = spec["paths"]["/gp/v1/practices/{ods_code}/feed"]["get"]
    limit = next(p for p in feed["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 500


def test_api_conforms_to_its_openapi_document(app: Flask, gp_world: GPWorld) -> None:
    headers = {"Authorization": f"Bearer {gp_world.token}"}
    documents = (gp_world.mine, gp_world.pdf, gp_world.theirs)

    # Valid requests are steered mostly to the practice and documents that exist, so that the
    # 200 answers, not only the 404s, are checked against the schema. Invalid ones (negative
    # mode) are left as generated, or the steering would make them valid.
    positive = schemathesis.openapi.from_wsgi(SPEC, app)

    @positive.hook
    def map_path_parameters(context: Any, path_parameters: dict[str, Any]) -> dict[str, Any]:
        if path_parameters is None:
            return path_parameters
        choice = hash(repr(sorted(path_parameters.items())))
        if "ods_code" in path_parameters and choice % 5:
            path_parameters["ods_code"] = samples.PRACTICE
        if "document_id" in path_parameters and choice % 7:
            path_parameters["document_id"] = documents[choice % len(documents)]
        return path_parameters

    negative = schemathesis.openapi.from_wsgi(SPEC, app)
    runs = [(positive, GenerationMode.POSITIVE), (negative, GenerationMode.NEGATIVE)]
    for schema, mode in runs:
        # Configured, not passed per call: schemathesis then knows the credentials, and its
        # ignored-auth check tries requests without them and with wrong ones.
        schema.config.update(headers=headers)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 6
        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def conforms(case: schemathesis.Case) -> None:
                case.call_and_validate()

            conforms()

"""Reading ITK3 responses, and telling a MESH refusal from MESH being unavailable."""

from __future__ import annotations

import json

import pytest
from mesh_client import MeshError

from mesh.client import MeshRejected, MeshUnavailable, send
from mesh.responses import NotAResponse, parse_response
from tests.mesh.conftest import itk_response


def test_an_itk3_business_response_names_the_message_it_answers() -> None:
    answer = parse_response(
        itk_response("0b6f0c57-0000-4000-8000-000000000001", "ok", "30001", "Patient known here")
    )
    assert answer.answers == "0b6f0c57-0000-4000-8000-000000000001"
    assert (answer.code, answer.itk_code, answer.kind) == ("ok", "30001", "business")


def test_an_infrastructure_response_is_not_taken_for_filing() -> None:
    answer = parse_response(itk_response("abc", "ok", "20013", "Success"))
    assert answer.kind == "infrastructure"


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not json",
        b"[]",
        json.dumps({"resourceType": "Patient"}).encode(),
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "message",
                "entry": [{"resource": {"resourceType": "MessageHeader"}}],
            }
        ).encode(),
    ],
)
def test_anything_that_is_not_an_itk3_response_is_said_to_be_so(body: bytes) -> None:
    with pytest.raises(NotAResponse):
        parse_response(body)


class RefusingClient:
    """Stands in for mesh-client's send, raising what it raises for a given answer."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def send_message(self, *args: object, **kwargs: object) -> str:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        MeshError(
            "Unregistered to address",
            {"detail": [{"event": "SEND", "code": "12", "msg": "Unregistered to address"}]},
        ),
        MeshError("Not registered for workflow", {"errorCode": "17", "errorDescription": "x"}),
    ],
)
def test_a_send_refused_with_a_mesh_error_code_is_a_rejection(error: MeshError) -> None:
    with pytest.raises(MeshRejected, match=r"MESH error 1[27]"):
        send(RefusingClient(error), "A81001OT01", "W", b"{}", "L", "S")


def test_a_send_answered_without_a_mesh_error_code_is_tried_again_later() -> None:
    throttled = MeshError({"message": "Too many requests"})
    with pytest.raises(MeshUnavailable, match="Too many requests"):
        send(RefusingClient(throttled), "A81001OT01", "W", b"{}", "L", "S")
    with pytest.raises(MeshUnavailable):
        send(RefusingClient(ConnectionRefusedError()), "A81001OT01", "W", b"{}", "L", "S")

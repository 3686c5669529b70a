"""A document as a practice sees it: metadata and current visibility."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from flagging.gp_reads import MAX_SEQ
from flagging.models import WITHDRAWN, Reason, Source, Visibility


class VersionQuerySchema(Schema):
    version = fields.Integer(
        validate=validate.Range(min=1, max=MAX_SEQ),
        metadata={
            "description": "A version published to the practice (a feed event's "
            "`version`); by default the latest one."
        },
    )


class PatientSchema(Schema):
    nhs_number = fields.String(required=True, metadata={"example": "9990000018"})
    family_name = fields.String(required=True)
    given_name = fields.String(required=True)
    birth_date = fields.Date(required=True, allow_none=True)


class OrganisationSchema(Schema):
    ods_code = fields.String(required=True)
    name = fields.String(required=True)


class AuthorSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class VisibilitySchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf([v.value for v in Visibility]))
    nopat = fields.Boolean(
        required=True,
        metadata={
            "description": "True while pending or withheld: do not show the patient "
            "(v3-ActCode NOPAT)."
        },
    )
    reason = fields.String(
        required=True,
        validate=validate.OneOf(["", *(r.value for r in Reason), WITHDRAWN]),
        metadata={
            "description": "Why it is withheld; empty otherwise. `withdrawn`: the hospital "
            "cancelled the document, which is never to be shown."
        },
    )
    reason_text = fields.String(required=True)
    source = fields.String(
        required=True,
        validate=validate.OneOf(["", *(s.value for s in Source)]),
        metadata={"description": "Who or what set the visibility (ZFL-8)."},
    )
    decided_by = fields.String(required=True)
    decided_at = fields.DateTime(required=True, allow_none=True)
    withhold_until = fields.DateTime(
        required=True,
        allow_none=True,
        metadata={"description": "A withheld document becomes visible then, unless decided again."},
    )


class LinksSchema(Schema):
    self = fields.String(required=True)
    hl7v2 = fields.String(required=True)
    fhir = fields.String(required=True)
    content = fields.String(required=True, allow_none=True)


class DocumentSchema(Schema):
    id = fields.Integer(required=True)
    practice = fields.String(required=True)
    custodian = fields.Nested(OrganisationSchema, required=True)
    document_number = fields.String(
        required=True, metadata={"description": "TXA-12 (MDM) or OBR-3 (ORU) of the first version."}
    )
    kind = fields.String(required=True, validate=validate.OneOf(["MDM", "ORU"]))
    status = fields.String(
        required=True,
        validate=validate.OneOf(["current", "withdrawn"]),
        metadata={
            "description": "`withdrawn`: cancelled by the hospital (MDM T11, OBR-25 X); "
            "every version is then withheld (NOPAT) and must never be shown to the patient."
        },
    )
    version = fields.Integer(required=True)
    latest_version = fields.Integer(
        required=True, metadata={"description": "The latest version published to the practice."}
    )
    version_number = fields.String(
        required=True, metadata={"description": "The version's own TXA-12 / OBR-3."}
    )
    event = fields.String(required=True, metadata={"description": "T01..T11 or R01."})
    change = fields.String(required=True)
    patient = fields.Nested(PatientSchema, required=True)
    document_type = fields.String(required=True)
    title = fields.String(required=True)
    author = fields.Nested(AuthorSchema, required=True)
    origination_time = fields.DateTime(required=True, allow_none=True)
    received_at = fields.DateTime(required=True)
    content_type = fields.String(required=True)
    content_size = fields.Integer(required=True)
    visibility = fields.Nested(VisibilitySchema, required=True)
    links = fields.Nested(LinksSchema, required=True)

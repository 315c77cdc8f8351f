"""The policy endpoints in the OpenAPI document, from the models that also validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from policies.schema import PolicyDocument

from .openapi import error_responses
from .policy_bodies import RollbackRequest, SimulateRequest, ValidateRequest

REF = "#/components/schemas/{model}"
ADMIN = [{"admin": []}]

ISSUE = {"type": "object", "required": ["severity", "path", "message", "code"], "properties": {
    "severity": {"type": "string", "enum": ["error", "warning"]},
    "path": {"type": "string", "examples": ["rules[3].escalate[1].overflow"]},
    "message": {"type": "string", "examples": ["unknown queue 'vip2'"]},
    "code": {"type": "string", "examples": ["unknown_queue"]},
}}
REPORT = {"type": "object", "required": ["ok", "errors", "warnings", "issues"], "properties": {
    "ok": {"type": "boolean", "description": "true when there is no error (warnings do not block a publish)"},
    "errors": {"type": "integer"}, "warnings": {"type": "integer"},
    "issues": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyIssue"}},
}}
ROSTER_USE = {"type": "object", "description": "Which roster of agents the answer used.", "properties": {
    "source": {"type": "string", "enum": ["request", "provider", "none", "empty"]},
    "agents": {"type": "integer"}, "checked": {"type": "boolean"}, "note": {"type": "string"},
}}
RECORD = {"type": "object", "required": ["version", "kind", "author", "at"], "properties": {
    "version": {"type": "integer"}, "kind": {"type": "string", "enum": ["published", "rolled_back"]},
    "name": {"type": "string"}, "author": {"type": "string", "description": "who made the change"},
    "at": {"type": "string", "format": "date-time"},
    "comment": {"type": "string", "description": "the publish comment, or the rollback's reason"},
    "rolled_back_to": {"type": ["integer", "null"]},
    "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyIssue"}},
}}
STORED = {"allOf": [{"$ref": "#/components/schemas/PolicyRecord"}, {"type": "object", "properties": {
    "document": {"$ref": "#/components/schemas/PolicyDocument"},
    "source": {"type": ["string", "null"], "description": "the YAML as published, comments included"},
    "active": {"type": "boolean"},
}}]}
SIMULATION = {"type": "object", "description": "What the policy does to the contact, step by step.", "properties": {
    "policy_version": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
    "rule": {"type": "object", "description": "the matched rule: id, index, what it matches"},
    "earlier_rules": {"type": "array", "description": "each earlier rule and why it did not match",
                      "items": {"type": "object"}},
    "queue": {"type": "object"}, "requirements": {"type": "array", "items": {"type": "object"}},
    "strategy": {"type": "string"}, "priority": {"type": "number"}, "offer_timeout_s": {"type": "number"},
    "after_hours": {"type": "boolean"}, "callback_at_s": {"type": ["number", "null"]},
    "deadlines": {"type": "object", "additionalProperties": {"type": "number"}},
    "escalations": {"type": "array", "items": {"type": "object"}},
    "timeline": {"type": "array", "description": "priority, queue, requirements and eligible agents over waiting time",
                 "items": {"type": "object"}},
    "agents": {"type": "object", "description": "eligible agents ranked, and why each other agent is not"},
    "reasons": {"type": "array", "items": {"type": "string"}},
    "policy": {"type": "object", "description": "active or draft; a draft's validation report"},
    "roster": {"$ref": "#/components/schemas/PolicyRosterUse"},
}}
EXAMPLE_YAML = """name: bank policy
queues:
  - {id: general, sla: {answer_within_s: 20, target_pct: 80}}
rules:
  - {id: general, queue: general, require: [{skill: general, min: 1}]}
"""


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {"PolicyIssue": ISSUE, "PolicyValidationReport": REPORT, "PolicyRecord": RECORD,
                               "StoredPolicy": STORED, "PolicySimulation": SIMULATION, "PolicyRosterUse": ROSTER_USE}
    models: list[tuple[str, type[BaseModel], bool]] = [
        ("PolicyDocument", PolicyDocument, True), ("SimulateRequest", SimulateRequest, False),
        ("RollbackRequest", RollbackRequest, False), ("ValidateRequest", ValidateRequest, False)]
    for name, model, by_alias in models:
        schema = model.model_json_schema(by_alias=by_alias, ref_template=REF)
        for sub, sub_schema in {**schema.pop("$defs", {}), name: schema}.items():
            if schemas.get(sub, sub_schema) != sub_schema:
                raise RuntimeError(f"two different schemas are both named {sub!r}")
            schemas[sub] = sub_schema
    for name, nullable in (("SimulateRequest", True), ("ValidateRequest", False)):
        draft = [{"type": "string"}, {"$ref": "#/components/schemas/PolicyDocument"}]
        schemas[name]["properties"]["policy"] = {"oneOf": draft + ([{"type": "null"}] if nullable else []),
                                                 "description": "YAML or JSON text, or the document as an object"}
    return schemas


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _ok(description: str, schema: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": _json(schema)}}


IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"}, "example": '"3"',
            "description": "The version this change is based on (the ETag of GET /v1/policies/active). "
                           "428 when missing, 409 when it is no longer the newest version."}
POLICY_BODY = {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"}, "example": EXAMPLE_YAML},
    "application/json": {"schema": {"$ref": "#/components/schemas/PolicyDocument"}},
}}


def openapi_paths(doc: dict[str, Any]) -> None:
    doc["components"]["schemas"].update(_schemas())
    yaml_too = {"application/yaml": {"schema": {"type": "string"}}}
    stored = {"description": "the version (as YAML with Accept: application/yaml or ?format=yaml)",
              "headers": {"ETag": {"schema": {"type": "string"}}},
              "content": {**_json("StoredPolicy"), **yaml_too}}
    paths = doc["paths"]
    paths["/v1/policies/active"] = {"get": {
        "summary": "The policy in force; its ETag is the version to send as If-Match", "security": ADMIN,
        "responses": {"200": stored, **error_responses(401, 403, 503)}}}
    paths["/v1/policies/history"] = {"get": {
        "summary": "Every version, newest first: who changed what, when and why", "security": ADMIN,
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1},
             "description": "only versions older than this one"}],
        "responses": {"200": {"description": "the history", "content": {"application/json": {"schema": {
            "type": "object", "properties": {
                "active_version": {"type": "integer"}, "newest_version": {"type": "integer"},
                "versions": {"type": "array", "items": {"$ref": "#/components/schemas/PolicyRecord"}}}}}}},
            **error_responses(400, 401, 403, 503)}}}
    paths["/v1/policies/{version}"] = {"get": {
        "summary": "One version with its document", "security": ADMIN,
        "parameters": [{"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": stored, **error_responses(401, 403, 404, 503)}}}
    paths["/v1/policies"] = {"put": {
        "summary": "Publish a new version (validated first; nothing is stored when it is invalid)",
        "description": "YAML (comments are kept) or JSON. An optional ?comment= goes into the audit trail.",
        "security": ADMIN, "parameters": [IF_MATCH, {"name": "comment", "in": "query", "schema": {"type": "string"}}],
        "requestBody": POLICY_BODY,
        "responses": {**_ok("published: the new version and its warnings", "PolicyRecord", "201"),
                      **error_responses(400, 401, 403, 409, 413, 415, 422, 428, 503)}}}
    paths["/v1/policies/validate"] = {"post": {
        "summary": "Validate a policy without publishing it",
        "description": "The body is a policy (YAML or JSON), or JSON {\"policy\": ..., \"roster\": [...]} to check "
                       "it against a given roster. Always 200: the report says whether it is ok.",
        "security": ADMIN,
        "requestBody": {"required": True, "content": {
            **POLICY_BODY["content"], "application/json": {"schema": {"oneOf": [
                {"$ref": "#/components/schemas/PolicyDocument"},
                {"$ref": "#/components/schemas/ValidateRequest"}]}}}},
        "responses": {**_ok("the validation report", "PolicyValidationReport"),
                      **error_responses(400, 401, 403, 413, 415, 422, 503)}}}
    paths["/v1/policies/rollback"] = {"post": {
        "summary": "Make an older version's document active again, as a new version", "security": ADMIN,
        "description": "If-Match is optional here: with it, the rollback is refused (409) when another "
                       "version was stored since; without it, it is based on the newest version.",
        "parameters": [{**IF_MATCH, "required": False}],
        "requestBody": {"required": True, "content": _json("RollbackRequest")},
        "responses": {**_ok("rolled back: the new version", "PolicyRecord", "201"),
                      **error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)}}}
    paths["/v1/policies/simulate"] = {"post": {
        "summary": "What a policy would do to a contact, step by step (nothing is stored)",
        "description": "Uses the active policy unless a draft is given, and the live roster unless one is given.",
        "security": ADMIN, "requestBody": {"required": True, "content": _json("SimulateRequest")},
        "responses": {**_ok("the simulation", "PolicySimulation"),
                      **error_responses(400, 401, 403, 413, 415, 422, 503)}}}

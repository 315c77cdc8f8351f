"""The OpenAPI document, assembled from the schemas that also validate requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

Contributor = Callable[[dict[str, Any]], None]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}


def error_responses(*statuses: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {str(s): {"description": "error", "content": {"application/json": {"schema": ref}}} for s in statuses}


def add_components(doc: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> None:
    """Add named schemas; two contributors may share a name only for the same schema."""
    known = doc["components"]["schemas"]
    for name, schema in schemas.items():
        if name in known and known[name] != schema:
            raise RuntimeError(f"two different schemas are both named {name!r} in the OpenAPI document")
        known[name] = schema


def build_document(contributors: list[Contributor]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Contact router",
            "version": "1",
            "description": "Omnichannel, event-sourced contact router for bank customer service.",
        },
        "paths": {},
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer"},
                "gateway": {"type": "apiKey", "in": "header", "name": "X-Router-Signature",
                            "description": "sha256=<hex HMAC-SHA256(secret, '<timestamp>.<raw body>')>, with "
                                         "X-Router-Timestamp: <unix seconds>"},
            },
        },
    }
    for contribute in contributors:
        contribute(doc)
    return doc


def health_paths(doc: dict[str, Any]) -> None:
    doc["paths"]["/v1/health"] = {
        "get": {
            "summary": "Whether this instance can do its work",
            "description": "200 while the database answers (within 2 s) and none of the instance's long-running "
                           "tasks (log follower, routing loop, leadership) was stopped by an error. 503 "
                           "database_unavailable (with Retry-After) or instance_stalled (restart it).",
            "responses": {
                "200": {"description": "healthy", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["status", "instance", "domain", "role", "event_lag_s"],
                    "properties": {
                        "status": {"const": "ok"},
                        "instance": {"type": "string", "description": "this server instance's id"},
                        "domain": {"type": "string", "description": "the routing domain it serves"},
                        "role": {"enum": ["leader", "standby"], "description": "leader: this instance routes"},
                        "event_lag_s": {"type": "number", "minimum": 0,
                                        "description": "how late the newest event reached this instance's state"},
                    }}}}},
                **error_responses(503),
            },
        }
    }
    doc["paths"]["/v1/openapi.json"] = {
        "get": {"summary": "This document", "responses": {"200": {"description": "the OpenAPI document"}}}
    }
    for path, summary in (("/admin", "The web page for admins and supervisors (asks for the admin token)"),
                          ("/desk", "A minimal agent desk page (asks for the agent's token)")):
        doc["paths"][path] = {"get": {"summary": summary, "responses": {
            "200": {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}}}}
    doc["paths"]["/static/dom.js"] = {"get": {"summary": "The script both pages share", "responses": {
        "200": {"description": "the script", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}}


OPENAPI_KEY = web.AppKey("openapi", dict)


async def openapi_handler(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])

"""POST /v1/customers/import: load the customer directory (JSON lines or CSV), admin only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from channels.customer_import import parse_import

from ..customers import import_profiles
from . import keys
from .auth import require_admin
from .channels import read_limited_body
from .errors import ApiError
from .openapi import error_responses

MAX_IMPORT_BYTES = 32 * 1024 * 1024
_FORMATS = {"application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/json": "jsonl",
            "text/csv": "csv"}


async def post_import(request: web.Request) -> web.Response:
    actor = require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    fmt = request.query.get("format") or _FORMATS.get(request.content_type)
    if fmt not in ("jsonl", "csv"):
        raise ApiError(415, "unsupported_format",
                       "send JSON lines (application/x-ndjson) or CSV (text/csv), or add ?format=jsonl|csv",
                       field="format")
    body = await read_limited_body(request, MAX_IMPORT_BYTES)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", "the file must be UTF-8") from None
    # A birth date after today is refused; "today" is taken a day wide, so that a customer born
    # today in a zone ahead of UTC is not.
    report = parse_import(text, fmt, today=datetime.now(timezone.utc).date() + timedelta(days=1))
    if not report.accepted:
        raise ApiError(422, "nothing_to_import", "no line of the file is a valid customer",
                       details=report.to_data())
    outcome = await import_profiles(request.app[keys.STORE], report, actor=actor,
                                    domain=request.app[keys.SETTINGS].domain)
    return web.json_response(outcome.to_data())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/customers/import", post_import)


def openapi_paths(doc: dict[str, Any]) -> None:
    doc["paths"]["/v1/customers/import"] = {"post": {
        "summary": "Import customer profiles (JSON lines or CSV), validated line by line",
        "security": [{"admin": []}],
        "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["jsonl", "csv"]}}],
        "requestBody": {"required": True, "content": {
            "application/x-ndjson": {"schema": {"type": "string"}, "example":
                '{"customer_id": "C1001", "segment": "vip", "phone_numbers": ["+8613800001111"], '
                '"birth_date": "1950-04-02", "preferred_language": "zh", "callback_windows": ["after 15:00"]}\n'},
            "text/csv": {"schema": {"type": "string"}},
        }},
        "responses": {
            "200": {"description": "the import report: stored, unchanged and rejected lines",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            **error_responses(400, 401, 403, 413, 415, 422, 503),
        },
    }}

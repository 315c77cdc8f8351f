"""POST /v1/customers/import: load the customer directory (JSON lines or CSV), admin only."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from channels.customer_import import parse_import

from ..customers import ImportIncomplete, import_profiles
from . import keys
from .auth import require_admin
from .channels import read_limited_body
from .errors import ApiError
from . import contact_schemas
from .openapi import add_components, error_responses

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
    # In a thread: a 32 MiB file takes seconds to check, and the event loop (desks' heartbeats,
    # gateways' events, routing) must not stand still meanwhile (measured: 100,000 customers
    # held it 4.8 s). The thread yields the interpreter to the loop every few milliseconds.
    report = await asyncio.to_thread(parse_import, text, fmt,
                                     today=datetime.now(timezone.utc).date() + timedelta(days=1))
    if not report.accepted:
        raise ApiError(422, "nothing_to_import", "no line of the file is a valid customer",
                       details=report.to_data())
    try:
        outcome = await import_profiles(request.app[keys.STORE], report, actor=actor,
                                        domain=request.app[keys.SETTINGS].domain)
    except ImportIncomplete as exc:
        raise ApiError(503, "import_incomplete",
                       f"the event store became unavailable during the import: {exc.stored + exc.unchanged} of "
                       f"{len(report.accepted)} valid profiles are stored, {exc.not_stored} are not. Send the same "
                       "file again when the store is back: stored profiles are recognised and not stored twice",
                       headers={"Retry-After": "5"},
                       details={"stored": exc.stored, "unchanged": exc.unchanged, "not_stored": exc.not_stored}) from None
    return web.json_response(outcome.to_data())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/customers/import", post_import)


def openapi_paths(doc: dict[str, Any]) -> None:
    add_components(doc, contact_schemas.component_schemas())
    line = {"$ref": "#/components/schemas/CustomerRecord"}
    doc["paths"]["/v1/customers/import"] = {"post": {
        "summary": "Import customer profiles (JSON lines or CSV), validated line by line",
        "description": "Every line is one CustomerRecord: in JSON lines one object a line, in CSV a header naming "
                       "its fields and one row a customer (lists separated by ';' in one cell, empty cells "
                       "absent). Bad lines are reported and skipped, the valid ones stored; a customer id given "
                       "twice keeps its first line. Importing the same profile again stores nothing (unchanged). "
                       "If the event store becomes unavailable during an import the answer is 503 "
                       "import_incomplete with the counts so far: send the same file again.",
        "security": [{"admin": []}],
        "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["jsonl", "csv"]}}],
        "requestBody": {"required": True, "content": {
            "application/x-ndjson": {"schema": {"type": "string", "x-line-schema": line}, "example":
                '{"customer_id": "C1001", "segment": "vip", "phone_numbers": ["+8613800001111"], '
                '"birth_date": "1950-04-02", "preferred_language": "zh", "callback_windows": ["after 15:00"]}\n'},
            "text/csv": {"schema": {"type": "string", "x-line-schema": line}, "example":
                "customer_id,segment,phone_numbers,birth_date,disabilities,callback_windows\n"
                "C1002,wealth,+8613800002222;+862150001234,1958-04-02,blind,09:00-11:00\n"},
        }},
        "responses": {
            "200": {"description": "the import report: stored, unchanged and rejected lines",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CustomerImportReport"}}}},
            **error_responses(400, 401, 403, 413, 415, 422, 503),
        },
    }}

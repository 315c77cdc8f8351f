"""Gateway ingest and contact views: thin handlers over IngestService."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from channels.native import MAX_BODY_BYTES, NativeEventError, channel_schemas, component_schemas, example_events, parse_native
from channels.security import SignatureError, retry_after_header, verify_signature
from channels.view import fold
from eventstore import DuplicateEventError, InvalidAppendError
from policies.vocabulary import Channel

from channels.events import contact_stream_id

from ..ingest import ContactBusy, IdempotencyConflict
from . import keys
from .auth import require_admin
from .errors import ApiError
from . import contact_schemas
from .openapi import add_components, error_responses


def channel_from(request: web.Request) -> Channel:
    name = request.match_info["channel"]
    try:
        return Channel(name)
    except ValueError:
        raise ApiError(404, "unknown_channel", f"no channel {name!r}; use one of phone, webchat, video, app",
                       field="channel") from None


async def read_limited_body(request: web.Request, limit: int) -> bytes:
    # aiohttp would inflate a compressed body, and the signature (and Content-Length) are of
    # the bytes sent: a compressed body could never verify, so say why instead of a 401.
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", ""):
        raise ApiError(415, "unsupported_content_encoding",
                       f"send the body uncompressed (Content-Encoding {encoding[:40]!r} is not accepted)",
                       field="Content-Encoding")
    length = request.content_length
    if length is not None:
        if length > limit:
            raise ApiError(413, "payload_too_large", f"the body is over {limit} bytes")
        # The HTTP parser hands over exactly Content-Length bytes, never more: one read,
        # where iterating the chunks costs a second read to find the end (every request).
        try:
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # the client stopped early: what came, as iterating gives
    body = bytearray()  # chunked: count the bytes as they come
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"the body is over {limit} bytes")
    return bytes(body)


def _check_rate(request: web.Request, channel: Channel) -> None:
    retry_after_s = request.app[keys.GATEWAY_RATE_LIMITER].acquire(channel.value, time.monotonic())
    if retry_after_s > 0:
        raise ApiError(429, "rate_limited", f"too many events from the {channel.value} gateway; slow down",
                       headers={"Retry-After": retry_after_header(retry_after_s)})


def _signatures(request: web.Request) -> str | None:
    """Every X-Router-Signature the request carries, as one list: HTTP treats repeated
    headers as one comma-separated list (a proxy may split or join them)."""
    values = request.headers.getall("X-Router-Signature", ())
    return ",".join(values) if values else None


def _check_signature(request: web.Request, channel: Channel, body: bytes) -> None:
    secrets = request.app[keys.CREDENTIALS].gateway_secrets.get(channel.value, ())
    if not secrets:  # a secrets file that leaves this gateway out: nothing can be verified
        raise ApiError(401, "gateway_not_configured",
                       f"no secret is configured for the {channel.value} gateway; the router's admin must add "
                       "one to the gateway secrets file", headers={"WWW-Authenticate": "X-Router-Signature"})
    try:
        verify_signature(body, request.headers.get("X-Router-Timestamp"), _signatures(request), secrets,
                         now_s=time.time())
    except SignatureError as exc:
        raise ApiError(401, exc.code, exc.message, headers={"WWW-Authenticate": "X-Router-Signature"}) from None


async def post_channel_event(request: web.Request) -> web.Response:
    channel = channel_from(request)
    body = await read_limited_body(request, MAX_BODY_BYTES)
    _check_signature(request, channel, body)
    # After the signature: unsigned requests must not spend the real gateway's allowance.
    _check_rate(request, channel)
    try:
        native = parse_native(channel, body)
    except NativeEventError as exc:
        status = 400 if exc.code == "invalid_json" else 422
        raise ApiError(status, exc.code, exc.message, field=exc.field) from None
    try:
        receipt = await request.app[keys.INGEST].ingest(native, body)
    except IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc), field="event_id") from None
    except ContactBusy as exc:
        raise ApiError(503, "contact_busy", str(exc), headers={"Retry-After": "1"}) from None
    except DuplicateEventError:
        raise ApiError(409, "event_id_reused", "this event_id was already used for another contact",
                       field="event_id") from None
    except InvalidAppendError as exc:
        raise ApiError(422, exc.code, exc.message) from None
    return web.Response(body=orjson.dumps(receipt.to_data()), status=202, content_type="application/json")


async def get_contact(request: web.Request) -> web.Response:
    gateway = _contact_reader(request)
    contact_id = request.match_info["contact_id"]
    if not _is_contact_id(contact_id):  # contact ids are UUIDs; anything else names no stream at all
        raise ApiError(404, "contact_not_found", f"no contact {contact_id[:80]!r}", field="contact_id")
    stream_id = contact_stream_id(contact_id, domain=request.app[keys.SETTINGS].domain)
    events = await request.app[keys.STORE].read_stream(stream_id)
    if not events:
        raise ApiError(404, "contact_not_found", f"no contact {contact_id!r}", field="contact_id")
    view = fold((e.type, e.data) for e in events)
    if gateway is not None and (view is None or view.channel is not gateway):
        # A gateway reads the contacts it opened, not the other channels' customers.
        raise ApiError(403, "forbidden", f"the {gateway.value} gateway can read only {gateway.value} contacts; "
                       "this one came in on another channel", field="contact_id")
    return web.json_response({
        "contact": view.to_data() if view else None,
        "events": [_history_entry(e) for e in events],
    })


def _contact_reader(request: web.Request) -> Channel | None:
    """Who may read a contact: the admin (Bearer token; None here) or a gateway that signs the
    request as it signs its events, over an empty body (its channel). A contact's history names
    the customer, the intent and the handling agents: no anonymous reads."""
    if "Authorization" in request.headers or "X-Router-Signature" not in request.headers:
        require_admin(request, request.app[keys.CREDENTIALS].admin_token)
        return None
    stamp, signature = request.headers.get("X-Router-Timestamp"), request.headers.get("X-Router-Signature")
    first_error: SignatureError | None = None
    for name, secrets in request.app[keys.CREDENTIALS].gateway_secrets.items():
        try:
            verify_signature(b"", stamp, signature, secrets, now_s=time.time())
        except SignatureError as exc:
            first_error = first_error or exc
            continue
        return Channel(name)
    error = first_error or SignatureError("bad_signature", "no gateway secret is configured")
    raise ApiError(401, error.code, f"{error.message} (a gateway signs a read as '<timestamp>.' with an empty body)",
                   headers={"WWW-Authenticate": "X-Router-Signature"})


def _is_contact_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _history_entry(event: Any) -> dict[str, Any]:
    data = dict(event.data)
    for secret in ("text", "transcript", "caller_number"):
        data.pop(secret, None)  # personal data stays in the log, out of this view
    return {
        "event_id": str(event.event_id), "version": event.version, "position": event.position, "type": event.type,
        "recorded_at": event.recorded_at.isoformat(), "data": data,
        "metadata": {k: v for k, v in event.metadata.items() if k != "body_sha256"},
    }


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/channels/{channel}/events", post_channel_event)
    app.router.add_get("/v1/contacts/{contact_id}", get_contact)


def openapi_paths(doc: dict[str, Any]) -> None:
    add_components(doc, component_schemas())
    add_components(doc, contact_schemas.component_schemas())
    for channel, schema in channel_schemas().items():
        examples = {e["event_type"].replace(".", "_"): {"value": e} for e in example_events(channel)}
        doc["paths"][f"/v1/channels/{channel.value}/events"] = {"post": {
            "summary": f"Post a {channel.value} gateway's native event",
            "description": "Signed with X-Router-Timestamp and X-Router-Signature (HMAC-SHA256 of "
                           "'<timestamp>.<raw body>' with the gateway's secret). Re-posting an event_id "
                           "with the same event (key order and spacing may differ) returns the first "
                           "answer with duplicate: true and appends nothing; the same event_id with "
                           "another event is 409 idempotency_conflict.",
            "parameters": [
                {"name": "X-Router-Timestamp", "in": "header", "required": True, "schema": {"type": "string"}},
                {"name": "X-Router-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema, "examples": examples}}},
            "responses": {
                "202": {"description": "accepted", "content": {"application/json": {"schema": RECEIPT_SCHEMA}}},
                **error_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
            },
        }}
    doc["paths"]["/v1/contacts/{contact_id}"] = {"get": {
        "summary": "A contact's current state and its full event history",
        "description": "For the admin (Bearer token), or for the gateway of the contact's channel, signed as "
                       "its events are, over an empty body: X-Router-Signature is HMAC-SHA256 of '<timestamp>.'. "
                       "Message texts, transcripts and full phone numbers stay out of this view.",
        "security": [{"admin": []}, {"gateway": []}],
        "parameters": [{"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the contact", "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/ContactAnswer"}}}},
                      **error_responses(401, 403, 404, 503)},
    }}


RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["contact_id", "position"],
    "properties": {
        "contact_id": {"type": "string"},
        "position": {"type": "integer"},
        "duplicate": {"type": "boolean"},
        "ignored": {"type": "string"},
    },
}

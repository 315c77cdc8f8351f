"""Property-based fuzzing of every operation in the served OpenAPI document.

For each operation the document lists (so new endpoints are fuzzed as soon as they
are documented), requests are drawn from what the document says: its parameters,
its request schemas and documented examples, mutated (fields dropped, renamed,
retyped; huge, unicode and control-character strings; wrong event types; nested
junk; random JSON and random bytes), with valid or broken credentials. Properties:

- never a 5xx, and nothing but 2xx or 4xx;
- every error body has the brief's shape `{"error": {"code", "message", "field"}}`;
- the status is one the document lists for the operation;
- a correctly signed gateway request is answered 202 (with a receipt) or a 4xx;
- a rejected request stores nothing (the events table is counted before and after).

Schemathesis was not used: it calls a live URL or an ASGI/WSGI app synchronously
and cannot sign each body with the gateway's HMAC; these strategies are built from
the same served document instead.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.native import event_types, example_events
from channels.security import sign
from policies.vocabulary import Channel
from router.api.openapi import OPENAPI_KEY
from router.app import build_app
from tests.e2e.conftest import ADMIN_TOKEN, SECRETS, Api, conforms_to_the_document, make_config

METHODS = ("get", "put", "post", "patch", "delete")
SIGNATURE_HEADERS = ("X-Router-Timestamp", "X-Router-Signature")
GATEWAY_EXAMPLES = 200  # per gateway endpoint: the most exposed surface
OTHER_EXAMPLES = 80  # per other operation
MAX_BODY = 256 * 1024
ALL_EVENT_TYPES = sorted({t for c in Channel for t in event_types(c)})


def _document() -> dict[str, Any]:
    # build_app connects to nothing (resources open in cleanup_ctx), so this is safe at import.
    return build_app(make_config("postgresql://fuzz@127.0.0.1:1/unused"))[OPENAPI_KEY]


DOCUMENT = _document()
OPERATIONS = [(method, path) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS]


# -- JSON Schema -> strategy (the subset the document uses) --------------------------------

def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
RANDOM_JSON = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
ODD_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\u202e\u0645\u0631\u062d\u0628\u0627", "🦄💳🏦", "\ufeff", "\r\n", "null", "0", "-1",
    "ÿ" * 300, "../../etc/passwd", "%00", "'; DROP TABLE events; --", "\\ud800", "\u0085\u2028\u2029",
])
UNICODE_TEXT = st.text(st.characters(codec="utf-8"), max_size=60) | ODD_TEXT
ODD_DATES = st.sampled_from([
    "0001-01-01T00:00:00+00:00", "0001-01-03T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2025-02-30T10:00:00Z",
    "2025-03-14T09:30:12", "2025-03-14", "1970-01-01T00:00:00Z", "2025-03-14T09:30:12.123456789+08:00",
])


def _aware_datetimes() -> st.SearchStrategy[str]:
    offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
    return st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets) | ODD_DATES


def from_schema(schema: dict[str, Any], doc: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that mostly satisfy `schema` (enough to get past validation and into the handler)."""
    schema = _resolve(schema, doc)
    if depth > 6:
        return st.none()
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return st.one_of([from_schema(s, doc, depth + 1) for s in schema[key]])
    if "allOf" in schema and schema["allOf"]:
        return from_schema(schema["allOf"][0], doc, depth + 1)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, doc, depth) for k in kind])
    return _typed(kind, schema, doc, depth)


def _typed(kind: str | None, schema: dict[str, Any], doc: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if kind == "object" or (kind is None and "properties" in schema):
        return _object(schema, doc, depth)
    if kind == "array":
        items = from_schema(schema.get("items", {}), doc, depth + 1)
        return st.lists(items, min_size=min(schema.get("minItems", 0), 3), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**40)), max_value=schema.get("maximum", 2**40))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return RANDOM_JSON


def _object(schema: dict[str, Any], doc: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fields = {name: from_schema(sub, doc, depth + 1) for name, sub in properties.items()}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = {}
        for name, strategy in fields.items():
            if name in required or draw(st.booleans()):
                out[name] = draw(strategy)
        return out

    return build()


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if schema.get("format") == "date-time":
        return _aware_datetimes()
    if "pattern" in schema:
        limit = schema.get("maxLength", 64)
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) <= limit)
    return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 80))


# -- mutations of documented examples ------------------------------------------------------

def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if len(prefix) > 40:  # deep junk from an earlier mutation: mutate its top
        return found
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(node, path[:-1])[path[-1]] = value
    return node


@st.composite
def mutated(draw: st.DrawFn, example: Any) -> Any:
    """An example with one to three mutations, each at a random place in it."""
    value = json.loads(json.dumps(example))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        value = draw(_one_mutation(value))
    return value


@st.composite
def _one_mutation(draw: st.DrawFn, value: Any) -> Any:
    path = draw(st.sampled_from(_paths(value)))
    target = _get(value, path)
    parent = _get(value, path[:-1]) if path else None
    kind = draw(st.sampled_from([
        "freshen", "freshen", "drop", "rename", "retype", "unicode", "huge", "event_type", "nest", "number", "date",
    ]))
    if kind == "freshen" and isinstance(value, dict):
        return _freshen(value, draw)
    if kind == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
        return value
    if kind == "rename" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(path[-1])
        return value
    if kind == "unicode" and isinstance(target, str):
        return _set(value, path, draw(UNICODE_TEXT))
    if kind == "huge":
        size = draw(st.sampled_from([129, 4001, 70_000, MAX_BODY + 10]))
        return _set(value, path, draw(st.sampled_from(["x", "é", "\x00"])) * size)
    if kind == "event_type" and isinstance(value, dict):
        value["event_type"] = draw(st.sampled_from(ALL_EVENT_TYPES) | UNICODE_TEXT | JSON_LEAVES)
        return value
    if kind == "nest":
        depth = draw(st.sampled_from([3, 50, 200]))  # deeper: RAW_BODIES (json.dumps recurses)
        wrapped: Any = target
        for _ in range(depth):
            wrapped = [wrapped] if draw(st.booleans()) else {"a": wrapped}
        return _set(value, path, wrapped)
    if kind == "number":
        return _set(value, path, draw(st.sampled_from([-1, 0, 2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 0.5, True])))
    if kind == "date":
        return _set(value, path, draw(ODD_DATES))
    return _set(value, path, draw(RANDOM_JSON))


def _freshen(value: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    """A new event id and session, so a (still valid) example is a new contact's event."""
    token = draw(st.uuids()).hex[:12]
    if "event_id" in value:
        value["event_id"] = f"fz-{token}"
    for key in ("call_id", "session_id", "conversation_id", "room_id"):
        if isinstance(value.get(key), str):
            value[key] = f"fz-s-{token}"
    if isinstance(value.get("room"), dict):
        value["room"]["room_id"] = f"fz-s-{token}"
    if "occurred_at" in value:
        value["occurred_at"] = datetime.now(timezone.utc).isoformat()
    return value


def _dumps(value: Any) -> bytes:
    raw = json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
    return raw[:MAX_BODY + 1024]  # over the limit either way; the client warns above 1 MiB


RAW_BODIES = st.sampled_from([
    b"", b"{", b"[]", b"null", b"0", b'"x"', b"NaN", b"\xff\xfe\x00", b"\xef\xbb\xbf{}", b'{"a":1,"a":2}',
    b'{"event_id":"\\ud800"}', b"[" * 5000 + b"]" * 5000, b'{"event_type": "call.started"' + b" " * 10 + b"}",
]) | st.binary(max_size=300)


# -- requests -------------------------------------------------------------------------------

@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    validly_signed: bool = False

    def __repr__(self) -> str:  # hypothesis prints failing calls: keep huge bodies readable
        body = self.body if self.body is None or len(self.body) <= 400 else self.body[:400] + b"..."
        return (f"Call({self.method} {self.path} query={self.query} headers={self.headers} "
                f"body={body!r} ({len(self.body or b'')} bytes) validly_signed={self.validly_signed})")


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def _parameters(doc: dict[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    item = doc["paths"][path]
    return [_resolve(p, doc) for p in (*item.get("parameters", ()), *item[method].get("parameters", ()))]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@st.composite
def calls(draw: st.DrawFn, doc: dict[str, Any], method: str, path: str) -> Call:
    op = doc["paths"][path][method]
    call = Call(method.upper(), path)
    for param in _parameters(doc, path, method):
        value = draw(from_schema(param.get("schema", {}), doc).map(_as_text) | UNICODE_TEXT)
        if param["in"] == "path":
            call.path = call.path.replace("{" + param["name"] + "}", quote(value or "x", safe=""))
        elif param["in"] == "query" and (param.get("required") or draw(st.booleans())):
            call.query[param["name"]] = value
        elif param["in"] == "header" and param["name"] not in SIGNATURE_HEADERS and draw(st.booleans()):
            call.headers[param["name"]] = draw(HEADER_TEXT)
    if op.get("security"):
        call.headers.update(draw(_credentials()))
    if "requestBody" in op:
        call.body, content_type = draw(_body(op["requestBody"].get("content", {}), doc))
        if content_type:
            call.headers["Content-Type"] = content_type
    names = {p["name"] for p in _parameters(doc, path, method)}
    if all(h in names for h in SIGNATURE_HEADERS):
        _sign(call, draw)
    return call


def _credentials() -> st.SearchStrategy[dict[str, str]]:
    return st.sampled_from([
        {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {},
        {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}, {"Authorization": "Bearer"},
    ])


@st.composite
def _body(draw: st.DrawFn, content: dict[str, Any], doc: dict[str, Any]) -> tuple[bytes, str | None]:
    if not content or draw(st.integers(0, 9)) == 0:
        return draw(RAW_BODIES), draw(st.sampled_from([None, "application/json", "application/octet-stream"]))
    content_type = draw(st.sampled_from(sorted(content)))
    media = content[content_type]
    examples = [e["value"] for e in media.get("examples", {}).values()] + ([media["example"]] if "example" in media else [])
    schema = _resolve(media.get("schema", {}), doc)
    if schema.get("type") == "string":  # a text format (JSON lines, CSV, YAML): mutate it as text
        line_schema = schema.get("x-line-schema")  # JSON lines: also lines drawn from each line's schema
        lines = from_schema(line_schema, doc).map(json.dumps) if line_schema and "json" in content_type else None
        return draw(_text_body(examples, lines)), content_type
    choices = [from_schema(schema, doc), RANDOM_JSON]
    if examples:
        choices = [st.sampled_from(examples).flatmap(mutated)] * 3 + choices
    return _dumps(draw(st.one_of(choices))), content_type


@st.composite
def _text_body(draw: st.DrawFn, examples: list[Any], drawn_lines: st.SearchStrategy[str] | None = None) -> bytes:
    seed = _as_text(draw(st.sampled_from(examples))) if examples else ""
    lines = seed.splitlines() or [""]
    extra = st.one_of(RANDOM_JSON.map(lambda v: json.dumps(v)), UNICODE_TEXT, st.just(seed.replace("1", "x")),
                      *([drawn_lines] * 3 if drawn_lines is not None else []))
    lines += draw(st.lists(extra, max_size=4))
    order = draw(st.permutations(lines))
    text = "\n".join(order)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut]
    return text.encode("utf-8", "surrogatepass")


def _sign(call: Call, draw: st.DrawFn) -> None:
    channel = call.path.split("/")[3]
    secret = SECRETS[channel][0]
    body = call.body or b""
    now = int(time.time())
    mode = draw(st.sampled_from(["valid"] * 6 + ["wrong", "stale", "future", "garbage", "missing", "other"]))
    if mode == "missing":
        return
    timestamp = {"stale": now - 301, "future": now + 301}.get(mode, now)
    key = {"wrong": "x" * 32, "other": SECRETS["video" if channel != "video" else "app"][0]}.get(mode, secret)
    signature = sign(body, key, timestamp) if mode != "garbage" else draw(HEADER_TEXT)
    call.headers.update({"X-Router-Timestamp": str(timestamp), "X-Router-Signature": signature})
    call.validly_signed = mode == "valid"


# -- the properties -------------------------------------------------------------------------

@pytest.fixture
async def events_table(api: Api) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(api.dsn)
    yield conn
    await conn.close()


async def _count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM events"))


def _error_shape(status: int, raw: bytes) -> None:
    body = json.loads(raw)
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str) and error["message"], body
    assert "field" in error and (error["field"] is None or isinstance(error["field"], str)), body


async def _check(api: Api, conn: asyncpg.Connection, method: str, path: str, call: Call) -> None:
    op = DOCUMENT["paths"][path][method]
    before = await _count(conn)
    async with api.client.request(call.method, call.path, params=call.query, headers=call.headers,
                                  data=call.body, allow_redirects=False) as resp:
        status, raw = resp.status, await resp.read()
    where = f"{call.method} {call.path} -> {status}: {raw[:300]!r}"
    assert 200 <= status < 300 or 400 <= status < 500, where
    assert str(status) in op["responses"], f"undocumented status: {where}"
    if status >= 400:
        _error_shape(status, raw)
        assert await _count(conn) == before, f"a rejected request stored events: {where}"
    if call.validly_signed:
        assert status == 202 or 400 <= status < 500, where
    if status == 202 and "/v1/channels/" in path:
        receipt = json.loads(raw)
        assert isinstance(receipt["contact_id"], str) and isinstance(receipt["position"], int), where
    conforms_to_the_document(DOCUMENT, op, status, resp.content_type, raw, where)


# The suite's runs are reproducible (a seed derived from each test), so a CI run fails only on
# what the code does, never on which inputs came up this time; FUZZ_RANDOM=1 explores new ones
# (how the nesting-depth 500 of the policy validator was found).
FUZZ = dict(deadline=None, derandomize=os.environ.get("FUZZ_RANDOM") != "1", suppress_health_check=[
    HealthCheck.function_scoped_fixture,  # `api` serves every example; each example counts its own events
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example,
])
GATEWAY_OPERATIONS = [(m, p) for m, p in OPERATIONS if p.startswith("/v1/channels/")]
OTHER_OPERATIONS = [(m, p) for m, p in OPERATIONS if not p.startswith("/v1/channels/")]


def _ids(operations: list[tuple[str, str]]) -> list[str]:
    return [f"{m.upper()} {p}" for m, p in operations]


@pytest.mark.parametrize(("method", "path"), GATEWAY_OPERATIONS, ids=_ids(GATEWAY_OPERATIONS))
@settings(max_examples=GATEWAY_EXAMPLES, **FUZZ)
@given(data=st.data())
async def test_gateway_endpoints_survive_fuzzing(api: Api, events_table: asyncpg.Connection, method: str,
                                                 path: str, data: st.DataObject) -> None:
    await _check(api, events_table, method, path, data.draw(calls(DOCUMENT, method, path), label="call"))


@pytest.mark.parametrize(("method", "path"), OTHER_OPERATIONS, ids=_ids(OTHER_OPERATIONS))
@settings(max_examples=OTHER_EXAMPLES, **FUZZ)
@given(data=st.data())
async def test_every_other_documented_operation_survives_fuzzing(api: Api, events_table: asyncpg.Connection,
                                                                 method: str, path: str, data: st.DataObject) -> None:
    await _check(api, events_table, method, path, data.draw(calls(DOCUMENT, method, path), label="call"))


async def test_the_fuzzed_document_is_the_served_one(api: Api) -> None:
    status, served = await api.get("/v1/openapi.json")
    assert status == 200
    assert served["paths"] == json.loads(json.dumps(DOCUMENT["paths"]))
    assert [op for op in GATEWAY_OPERATIONS] == [("post", f"/v1/channels/{c.value}/events") for c in Channel]


async def test_every_route_of_the_server_is_documented(api: Api) -> None:
    served = {(route.method.lower(), route.resource.canonical) for route in api.client.app.router.routes()
              if route.method != "HEAD" and route.resource is not None}
    # The gateways' route takes the channel as a parameter; the document has one path per channel.
    gateways = ("post", "/v1/channels/{channel}/events")
    assert gateways in served
    served = (served - {gateways}) | {("post", f"/v1/channels/{c.value}/events") for c in Channel}
    documented = {(method, path) for path, item in DOCUMENT["paths"].items() for method in item}
    assert served - documented == set()


@pytest.mark.parametrize("path", list(DOCUMENT["paths"]))
async def test_undocumented_methods_are_refused_in_the_error_shape(api: Api, events_table: asyncpg.Connection,
                                                                    path: str) -> None:
    concrete = path.replace("{", "x").replace("}", "")
    before = await _count(events_table)
    for method in METHODS:
        if method in DOCUMENT["paths"][path]:
            continue
        async with api.client.request(method.upper(), concrete, data=b"{}") as resp:
            assert 400 <= resp.status < 500, (method, path, resp.status)  # 405, or 401 before the method
            _error_shape(resp.status, await resp.read())
    assert await _count(events_table) == before


def _example(channel: Channel, event_type: str, **changes: Any) -> dict[str, Any]:
    event = next(e for e in example_events(channel) if e["event_type"] == event_type)
    return {**event, **changes}


@pytest.mark.parametrize(("channel", "event", "field"), [
    # Found by the fuzzing above, each once a 500: kept here as fixed examples.
    (Channel.PHONE, _example(Channel.PHONE, "ivr.completed", occurred_at="0001-01-01T00:00:00+00:00"), "occurred_at"),
    (Channel.WEBCHAT, _example(Channel.WEBCHAT, "session.started", page={"url": "http://["}), "page.url"),
    (Channel.APP, _example(Channel.APP, "message.created",
                           message={"message_id": "m-1", "sender": "customer", "text": "a\x00b"}), "message.text"),
])
async def test_what_the_fuzzer_found_stays_fixed(api: Api, channel: Channel, event: dict[str, Any], field: str) -> None:
    status, body = await api.post_event(channel.value, event)
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "invalid_field", field)
    assert await api.event_count() == 0
    status, body = await api.get("/v1/contacts/%20")  # not a contact id: 404, not the store's 422
    assert (status, body["error"]["code"]) == (404, "contact_not_found")

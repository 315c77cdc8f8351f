"""One entry point for the four gateways' native events: parse, document, exemplify.

`parse_native` is on the ingest hot path (thousands of events a second), so each
channel's validator is built once, here, and bytes go straight to pydantic-core's
JSON parser (`TypeAdapter.validate_json`): no `json.loads`, no dict round trip.

The same models produce the OpenAPI schemas (`channel_schemas`,
`component_schemas`) and the documented examples (`example_events`), so what is
documented is exactly what is validated.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final, TypeAlias, cast, get_args

import orjson
from pydantic import TypeAdapter, ValidationError

from policies.vocabulary import Channel

from .app import AppBotHandoff, AppConversationClosed, AppConversationOpened, AppEvent, AppMessageCreated
from .native_base import NativeModel, error_message, json_path
from .phone import PhoneCallEnded, PhoneCallHungUp, PhoneCallStarted, PhoneEvent, PhoneIvrCompleted
from .video import VideoEnded, VideoEvent, VideoRequested
from .webchat import (
    WebchatBotHandoff,
    WebchatEvent,
    WebchatMessageCreated,
    WebchatSessionClosed,
    WebchatSessionStarted,
)

NativeEvent: TypeAlias = (
    PhoneCallStarted
    | PhoneIvrCompleted
    | PhoneCallHungUp
    | PhoneCallEnded
    | WebchatSessionStarted
    | WebchatMessageCreated
    | WebchatBotHandoff
    | WebchatSessionClosed
    | VideoRequested
    | VideoEnded
    | AppConversationOpened
    | AppMessageCreated
    | AppBotHandoff
    | AppConversationClosed
)

# The HTTP layer answers 413 above this; the parser itself does not count bytes.
MAX_BODY_BYTES: Final = 256 * 1024
DISCRIMINATOR: Final = "event_type"
COMPONENTS_REF: Final = "#/components/schemas/{model}"

_UNIONS: Final[Mapping[Channel, Any]] = {
    Channel.PHONE: PhoneEvent,
    Channel.WEBCHAT: WebchatEvent,
    Channel.VIDEO: VideoEvent,
    Channel.APP: AppEvent,
}
_ADAPTERS: Final[Mapping[Channel, TypeAdapter[Any]]] = {
    channel: TypeAdapter(union) for channel, union in _UNIONS.items()
}


class NativeEventError(Exception):
    """A native payload was refused. `field` is the JSON path of the culprit, or None.

    code: invalid_json | unknown_event_type | missing_field | invalid_field
    """

    def __init__(self, code: str, message: str, field: str | None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field

    def to_body(self) -> dict[str, Any]:
        """The error body of the outside contract."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


def parse_native(channel: Channel, raw: bytes) -> NativeEvent:
    """Validate a gateway's raw body; raise NativeEventError naming the first bad field."""
    try:
        event: NativeEvent = _ADAPTERS[channel].validate_json(raw)
    except ValidationError as exc:
        raise _native_error(exc) from None
    if NUL_ESCAPE in raw:  # rare: only then look closer (a plain bytes search on the hot path)
        _refuse_nul(orjson.loads(raw), ())
    return event


# PostgreSQL's jsonb cannot hold U+0000 in a string; JSON can only carry it as this escape.
NUL_ESCAPE: Final = b"\\u0000"


def _refuse_nul(node: Any, path: tuple[int | str, ...]) -> None:
    if isinstance(node, str) and "\x00" in node:
        raise NativeEventError("invalid_field", "must not contain the character U+0000", json_path(path))
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_nul(key, path)
            _refuse_nul(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _refuse_nul(value, (*path, index))


def channel_of(event: NativeEvent) -> Channel:
    """The channel whose gateway sends this kind of event."""
    return _CHANNEL_OF[type(event)]


def event_types(channel: Channel) -> tuple[str, ...]:
    """The event_type values one channel accepts, in documentation order."""
    return tuple(_event_type_of(model) for model in _members(channel))


def example_events(channel: Channel) -> list[dict[str, Any]]:
    """One complete, valid example payload per event type of a channel (fresh copies)."""
    return [copy.deepcopy(_examples_of(model)[0]) for model in _members(channel)]


def channel_schemas(*, ref_template: str = COMPONENTS_REF) -> dict[Channel, dict[str, Any]]:
    """Each channel's request-body schema: a `oneOf` with an OpenAPI discriminator.

    The referenced definitions are not inlined: put `component_schemas()` under
    `components.schemas` of the OpenAPI 3.1 document (the default `ref_template`).
    """
    return {channel: _body_schema(channel, ref_template) for channel in _UNIONS}


def component_schemas(*, ref_template: str = COMPONENTS_REF) -> dict[str, dict[str, Any]]:
    """Every model definition the channel schemas refer to, by name (JSON Schema 2020-12)."""
    merged: dict[str, dict[str, Any]] = {}
    for channel in _UNIONS:
        defs = _ADAPTERS[channel].json_schema(ref_template=ref_template).get("$defs", {})
        for name, schema in defs.items():
            if name in merged and merged[name] != schema:
                raise RuntimeError(f"two native models are both named {name!r}")
            merged[name] = schema
    return merged


def standalone_schema(channel: Channel) -> dict[str, Any]:
    """A self-contained JSON Schema for one channel (its `$defs` inside, `#/$defs/...` refs)."""
    return _ADAPTERS[channel].json_schema()


def _body_schema(channel: Channel, ref_template: str) -> dict[str, Any]:
    schema = _ADAPTERS[channel].json_schema(ref_template=ref_template)
    schema.pop("$defs", None)
    return schema


def _members(channel: Channel) -> tuple[type[NativeModel], ...]:
    union = get_args(_UNIONS[channel])[0]
    return tuple(get_args(union))


def _event_type_of(model: type[NativeModel]) -> str:
    (value,) = get_args(model.model_fields[DISCRIMINATOR].annotation)
    return str(value)


def _examples_of(model: type[NativeModel]) -> list[dict[str, Any]]:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), f"{model.__name__} has no examples"
    return cast("list[dict[str, Any]]", extra["examples"])


_CHANNEL_OF: Final[Mapping[type, Channel]] = {model: channel for channel in _UNIONS for model in _members(channel)}


# -- pydantic errors -> the project's error -------------------------------------------

_CODES: Final[Mapping[str, str]] = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "union_tag_not_found": "missing_field",
    "union_tag_invalid": "unknown_event_type",
    "missing": "missing_field",
}
_TAG_ERRORS: Final = frozenset({"union_tag_not_found", "union_tag_invalid"})


def _native_error(exc: ValidationError) -> NativeEventError:
    first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    kind = first["type"]
    code = _CODES.get(kind, "invalid_field")
    if kind in _TAG_ERRORS:
        return NativeEventError(code, _tag_message(kind), DISCRIMINATOR)
    if code == "invalid_json":
        return NativeEventError(code, "the body is not valid JSON", None)
    # loc starts with the union member's tag ("call.started", "caller", "number").
    field = json_path(first["loc"][1:])
    return NativeEventError(code, error_message(kind, first["msg"]), field)


def _tag_message(kind: str) -> str:
    if kind == "union_tag_not_found":
        return f"the body must be an object with a string '{DISCRIMINATOR}'"
    return f"unknown '{DISCRIMINATOR}' for this channel"

"""Native payloads: every documented example parses; every bad input names its field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from channels.native import (
    MAX_BODY_BYTES,
    NativeEventError,
    channel_of,
    channel_schemas,
    component_schemas,
    event_types,
    example_events,
    parse_native,
    standalone_schema,
)
from policies.vocabulary import Channel

from .samples import DELETE, changed, example, native, raw

ALL_EXAMPLES = [(channel, payload) for channel in Channel for payload in example_events(channel)]
EXPECTED_TYPES = {
    Channel.PHONE: ("call.started", "ivr.completed", "call.hung_up", "call.ended"),
    Channel.WEBCHAT: ("session.started", "message.created", "bot.handoff", "session.closed"),
    Channel.VIDEO: ("video.requested", "video.ended"),
    Channel.APP: ("conversation.opened", "message.created", "bot.handoff", "conversation.closed"),
}


@pytest.mark.parametrize(
    ("channel", "payload"), ALL_EXAMPLES, ids=lambda v: getattr(v, "value", None) or v["event_type"]
)
def test_every_example_parses_to_its_channel(channel: Channel, payload: dict[str, Any]) -> None:
    event = parse_native(channel, raw(payload))
    assert event.event_type == payload["event_type"]
    assert event.event_id == payload["event_id"]
    assert channel_of(event) is channel
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize("channel", list(Channel))
def test_one_example_per_event_type(channel: Channel) -> None:
    assert event_types(channel) == EXPECTED_TYPES[channel]
    assert [e["event_type"] for e in example_events(channel)] == list(EXPECTED_TYPES[channel])


def test_example_events_are_fresh_copies() -> None:
    example_events(Channel.PHONE)[0]["caller"]["number"] = "garbage"
    assert example_events(Channel.PHONE)[0]["caller"]["number"] == "+8613812345678"


def test_examples_are_well_under_the_body_limit() -> None:
    assert all(len(raw(p)) < MAX_BODY_BYTES // 10 for _, p in ALL_EXAMPLES)


PHONE, WEBCHAT, VIDEO, APP = Channel.PHONE, Channel.WEBCHAT, Channel.VIDEO, Channel.APP
LONG_TRANSCRIPT = [{"author": "customer", "text": "hi", "sent_at": "2025-03-14T10:00:00Z"}] * 51

BAD_FIELDS = [
    # (channel, event_type, changes, code, field)
    (PHONE, "call.started", {"caller.number": "13812345678"}, "invalid_field", "caller.number"),
    (PHONE, "call.started", {"caller.number": "+0123456789"}, "invalid_field", "caller.number"),
    (PHONE, "call.started", {"caller.number": 8613812345678}, "invalid_field", "caller.number"),
    (PHONE, "call.started", {"dialled.line": "vip"}, "invalid_field", "dialled.line"),
    (PHONE, "call.started", {"dialled": DELETE}, "missing_field", "dialled"),
    (PHONE, "call.started", {"call_id": DELETE}, "missing_field", "call_id"),
    (PHONE, "call.started", {"event_id": DELETE}, "missing_field", "event_id"),
    (PHONE, "call.started", {"event_id": "has space"}, "invalid_field", "event_id"),
    (PHONE, "call.started", {"event_id": "x" * 129}, "invalid_field", "event_id"),
    (PHONE, "call.started", {"occurred_at": "2025-03-14T09:30:12"}, "invalid_field", "occurred_at"),
    (PHONE, "call.started", {"occurred_at": 1741915812}, "invalid_field", "occurred_at"),
    (PHONE, "call.started", {"occurred_at": "yesterday"}, "invalid_field", "occurred_at"),
    (PHONE, "call.started", {"occurred_at": DELETE}, "missing_field", "occurred_at"),
    (PHONE, "call.started", {"caller.colour": "red"}, "invalid_field", "caller.colour"),
    (PHONE, "call.started", {"sip_headers": {}}, "invalid_field", "sip_headers"),
    (PHONE, "ivr.completed", {"ivr.intent": "mortgage"}, "invalid_field", "ivr.intent"),
    (PHONE, "ivr.completed", {"ivr.intent": DELETE}, "missing_field", "ivr.intent"),
    (PHONE, "ivr.completed", {"ivr.language": "EN"}, "invalid_field", "ivr.language"),
    (PHONE, "ivr.completed", {"ivr.duration_s": "34"}, "invalid_field", "ivr.duration_s"),
    (PHONE, "ivr.completed", {"ivr.duration_s": -1}, "invalid_field", "ivr.duration_s"),
    (PHONE, "ivr.completed", {"ivr.menu_path": ["1", "12"]}, "invalid_field", "ivr.menu_path[1]"),
    (PHONE, "call.hung_up", {"party": "dog"}, "invalid_field", "party"),
    (PHONE, "call.ended", {"duration_s": 1.5}, "invalid_field", "duration_s"),
    (WEBCHAT, "session.started", {"visitor.locale": "english"}, "invalid_field", "visitor.locale"),
    (WEBCHAT, "session.started", {"visitor.locale": "zh-CN-x"}, "invalid_field", "visitor.locale"),
    (WEBCHAT, "session.started", {"page.url": "javascript:alert(1)"}, "invalid_field", "page.url"),
    (WEBCHAT, "session.started", {"visitor.customer_id": "C 1"}, "invalid_field", "visitor.customer_id"),
    (WEBCHAT, "message.created", {"message.text": ""}, "invalid_field", "message.text"),
    (WEBCHAT, "message.created", {"message.text": "x" * 4001}, "invalid_field", "message.text"),
    (WEBCHAT, "message.created", {"message.author": "agent"}, "invalid_field", "message.author"),
    (WEBCHAT, "bot.handoff", {"handoff.confidence": 1.5}, "invalid_field", "handoff.confidence"),
    (WEBCHAT, "bot.handoff", {"handoff.detected_intent": "pizza"}, "invalid_field", "handoff.detected_intent"),
    (WEBCHAT, "bot.handoff", {"handoff.transcript": LONG_TRANSCRIPT}, "invalid_field", "handoff.transcript"),
    (WEBCHAT, "bot.handoff", {"handoff.transcript.1.text": ""}, "invalid_field", "handoff.transcript[1].text"),
    (
        WEBCHAT,
        "bot.handoff",
        {"handoff.transcript.2.sent_at": DELETE},
        "missing_field",
        "handoff.transcript[2].sent_at",
    ),
    (WEBCHAT, "session.closed", {"closed_by": None}, "invalid_field", "closed_by"),
    (VIDEO, "video.requested", {"sign_language": "Chinese Sign Language"}, "invalid_field", "sign_language"),
    (VIDEO, "video.requested", {"room.room_id": DELETE}, "missing_field", "room.room_id"),
    (VIDEO, "video.ended", {"room_id": ""}, "invalid_field", "room_id"),
    (APP, "conversation.opened", {"user.user_id": DELETE}, "missing_field", "user.user_id"),
    (APP, "conversation.opened", {"client.version": "v8"}, "invalid_field", "client.version"),
    (APP, "conversation.opened", {"client.platform": "symbian"}, "invalid_field", "client.platform"),
    (APP, "message.created", {"message.sender": "visitor"}, "invalid_field", "message.sender"),
    (APP, "bot.handoff", {"handoff.transcript.0.author": "agent"}, "invalid_field", "handoff.transcript[0].author"),
]


@pytest.mark.parametrize(("channel", "event_type", "changes", "code", "field"), BAD_FIELDS)
def test_bad_field_is_named(channel: Channel, event_type: str, changes: dict[str, Any], code: str, field: str) -> None:
    body = raw(changed(example(channel, event_type), changes))
    with pytest.raises(NativeEventError) as caught:
        parse_native(channel, body)
    assert (caught.value.code, caught.value.field) == (code, field)


BAD_BODIES = [
    (b"", "invalid_json", None),
    (b"{", "invalid_json", None),
    (b'{"event_type": "call.started",}', "invalid_json", None),
    (b"\xff\xfe", "invalid_json", None),
    (b"[]", "invalid_field", None),
    (b'"call.started"', "invalid_field", None),
    (b"{}", "missing_field", "event_type"),
    (b'{"event_type": "call.exploded"}', "unknown_event_type", "event_type"),
    (b'{"event_type": "session.started"}', "unknown_event_type", "event_type"),  # a webchat type
    (b'{"event_type": 7}', "unknown_event_type", "event_type"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_BODIES)
def test_bad_body_on_phone(body: bytes, code: str, field: str | None) -> None:
    with pytest.raises(NativeEventError) as caught:
        parse_native(Channel.PHONE, body)
    assert (caught.value.code, caught.value.field) == (code, field)
    assert caught.value.to_body() == {"error": {"code": code, "message": caught.value.message, "field": field}}


def test_trailing_garbage_is_invalid_json() -> None:
    with pytest.raises(NativeEventError) as caught:
        parse_native(Channel.PHONE, raw(example(PHONE, "call.ended")) + b" {}")
    assert caught.value.code == "invalid_json"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("en-US", "en-US"), ("en_us", "en-US"), ("ZH-hans-cn", "zh-Hans-CN"), ("ja", "ja"), ("es-419", "es-419")],
)
def test_locales_are_canonical(given: str, canonical: str) -> None:
    event = native(WEBCHAT, "session.started", {"visitor.locale": given})
    assert event.visitor.locale == canonical  # type: ignore[union-attr]


def test_withheld_caller_number_is_allowed() -> None:
    event = native(PHONE, "call.started", {"caller": {"presentation": "restricted"}})
    assert event.caller.number is None  # type: ignore[union-attr]


def test_unicode_text_survives() -> None:
    event = native(APP, "message.created")
    assert event.message.text == "我的卡好像被盗刷了"  # type: ignore[union-attr]


# -- schemas -------------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        mapping = list(node["mapping"].values()) if isinstance(node.get("mapping"), dict) else []
        return own + mapping + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_schemas_refer_only_to_components() -> None:
    bodies, components = channel_schemas(), component_schemas()
    refs = _refs(bodies) + _refs(components)
    assert refs and all(r.startswith("#/components/schemas/") for r in refs)
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(components)
    assert "$defs" not in json.dumps(bodies) + json.dumps(components)


@pytest.mark.parametrize("channel", list(Channel))
def test_body_schema_is_a_discriminated_one_of(channel: Channel) -> None:
    body = channel_schemas()[channel]
    assert body["discriminator"]["propertyName"] == "event_type"
    assert sorted(body["discriminator"]["mapping"]) == sorted(EXPECTED_TYPES[channel])
    assert len(body["oneOf"]) == len(EXPECTED_TYPES[channel])


@pytest.mark.parametrize("channel", list(Channel))
def test_each_event_schema_carries_its_example(channel: Channel) -> None:
    components = component_schemas()
    for ref in channel_schemas()[channel]["oneOf"]:
        schema = components[ref["$ref"].rsplit("/", 1)[1]]
        (payload,) = schema["examples"]
        assert schema["additionalProperties"] is False
        assert parse_native(channel, raw(payload)).event_type == payload["event_type"]


def test_standalone_schema_keeps_its_defs_inside() -> None:
    schema = standalone_schema(Channel.WEBCHAT)
    assert all(r.startswith("#/$defs/") for r in _refs(schema))
    assert "BotTranscriptLine" in schema["$defs"]


@pytest.mark.parametrize("moment", ["1741915800", 1741915800, 1741915800.5, "14/03/2025 09:30"])
def test_occurred_at_is_rfc_3339_text_not_unix_seconds(moment: object) -> None:
    payload = changed(example(Channel.PHONE, "call.started"), {"occurred_at": moment})
    with pytest.raises(NativeEventError) as refused:
        parse_native(Channel.PHONE, raw(payload))
    assert refused.value.field == "occurred_at"

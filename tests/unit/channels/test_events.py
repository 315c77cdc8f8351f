"""Contact events: ids, stream names, JSON data, and no secrets in repr()."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from channels.events import (
    CONTACT_EVENT_TYPES,
    BotHandedOff,
    ContactOpened,
    MessageReceived,
    TranscriptEntry,
    contact_event_id,
    contact_id_for,
    contact_stream_id,
    facts_from_data,
    facts_to_data,
)
from policies.vocabulary import CallbackWindow, Channel, ContactFacts, Intent, Need, Segment

from .samples import SENIOR, native, run

AT = datetime(2025, 3, 14, 1, 30, tzinfo=UTC)
# The event store's stream id grammar: "<category>-<domain>:<key>".
STREAM_ID = re.compile(r"([a-z][a-z0-9_]{0,39})-([a-z0-9][a-z0-9_]{0,39}):([\x21-\x7e]{1,200})")


def test_contact_ids_are_deterministic_uuids_per_channel_session_and_domain() -> None:
    first = contact_id_for(Channel.PHONE, "c-1")
    assert first == contact_id_for(Channel.PHONE, "c-1")
    assert uuid.UUID(first).version == 5
    others = {
        contact_id_for(Channel.WEBCHAT, "c-1"),
        contact_id_for(Channel.PHONE, "c-2"),
        contact_id_for(Channel.PHONE, "c-1", domain="beijing"),
    }
    assert first not in others and len(others) == 3


def test_stream_ids_follow_the_event_store_grammar() -> None:
    stream_id = contact_stream_id(contact_id_for(Channel.APP, "conv-1"), domain="site_2")
    match = STREAM_ID.fullmatch(stream_id)
    assert match is not None and match.groups()[:2] == ("contact", "site_2")


@pytest.mark.parametrize("domain", ["", "Default", "a-b", "x" * 41, "a:b"])
def test_bad_domains_are_refused(domain: str) -> None:
    with pytest.raises(ValueError):
        contact_stream_id("c", domain=domain)


def test_event_ids_depend_on_the_gateway_event_and_position() -> None:
    ids = {contact_event_id(Channel.PHONE, "e-1", i) for i in range(3)}
    assert len(ids) == 3
    assert contact_event_id(Channel.PHONE, "e-1", 0) == contact_event_id(Channel.PHONE, "e-1", 0)
    assert contact_event_id(Channel.PHONE, "e-1", 0) != contact_event_id(Channel.VIDEO, "e-1", 0)


def test_every_kind_of_event_is_json_ready() -> None:
    phone = [native(Channel.PHONE, n) for n in ("call.started", "ivr.completed", "call.hung_up")]
    webchat = [native(Channel.WEBCHAT, n) for n in ("session.started", "message.created", "bot.handoff")]
    translations = run(phone, SENIOR)[1] + run(webchat)[1]
    seen = set()
    for event in (e for t in translations for e in t.events):
        data = event.to_data()
        assert orjson.loads(orjson.dumps(data)) == data
        assert data["contact_id"] == event.contact_id and data["channel"] == event.channel.value
        seen.add(event.TYPE)
    assert seen == CONTACT_EVENT_TYPES


def test_facts_survive_a_round_trip_through_json() -> None:
    facts = ContactFacts(
        contact_id="c",
        channel=Channel.VIDEO,
        segment=Segment.CORPORATE,
        language="ja",
        languages=frozenset({"ja", "en"}),
        needs=frozenset({Need.DEAF, Need.FOREIGN}),
        intent=Intent.COMPLAINT,
        repeat_count=3,
        customer_id="C9",
        dedicated_agent="a-1",
        tags=frozenset({"t1", "t2"}),
        sign_language="jsl",
        callback_windows=(CallbackWindow(540, 600),),
        dialled_line=None,
    )
    assert facts_from_data(orjson.loads(orjson.dumps(facts_to_data(facts)))) == facts


def test_repr_never_shows_numbers_texts_or_transcripts() -> None:
    opened = ContactOpened("c", Channel.PHONE, AT, "call-1", caller_number="+8613812345678", caller_masked="+86***")
    message = MessageReceived("c", Channel.APP, AT, "m-1", "customer", "my PIN is 123456")
    handed = BotHandedOff("c", Channel.APP, AT, "bot", Intent.FRAUD, "fraud", 0.9, "policy",
                          (TranscriptEntry("customer", "card 6222 0000 1111 2222", AT),))  # fmt: skip
    printed = repr(opened) + repr(message) + repr(handed) + str(message)
    for secret in ("13812345678", "123456", "6222"):
        assert secret not in printed
    assert message.to_data()["text"] == "my PIN is 123456" and message.length_chars == 16

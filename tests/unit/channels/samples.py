"""Native payloads for the channel tests, built from the documented examples."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import orjson

from channels.adapters import Translation, translate
from channels.directory import CustomerProfile, Disability
from channels.native import NativeEvent, example_events, parse_native
from channels.repeat import PriorContact
from channels.view import ContactView, evolve
from policies.vocabulary import CallbackWindow, Channel, Segment

DELETE = object()  # a change that removes the key


def example(channel: Channel, event_type: str) -> dict[str, Any]:
    for payload in example_events(channel):
        if payload["event_type"] == event_type:
            return payload
    raise KeyError(f"no {channel} example for {event_type}")


def changed(payload: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `payload` with dotted paths set (or deleted with DELETE)."""
    result = copy.deepcopy(dict(payload))
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return result


def raw(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def native(channel: Channel, event_type: str, changes: Mapping[str, Any] | None = None) -> NativeEvent:
    return parse_native(channel, raw(changed(example(channel, event_type), changes or {})))


# -- running native events through the adapters, as the ingest service will ----------------

VIP = CustomerProfile(
    customer_id="C1000123",
    phone_numbers=("+8613812345678",),
    segment=Segment.VIP,
    birth_date=date(1980, 5, 1),
    preferred_language="zh",
    languages=frozenset({"zh", "en"}),
    callback_windows=(CallbackWindow(900, 1440),),
    no_calls_from_unknown_numbers=True,
    dedicated_agent="a-017",
    tags=frozenset({"payroll"}),
)
# Sixty on the day of the phone examples (2025-03-14, +08:00).
SENIOR = CustomerProfile(customer_id="C1000777", birth_date=date(1965, 3, 14))
DEAF = CustomerProfile(customer_id="C3000789", disabilities=frozenset({Disability.DEAF}), sign_language="csl")


def stored(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data as the store gives it back: through JSON."""
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(data))
    return loaded


def apply(view: ContactView | None, translation: Translation) -> ContactView | None:
    assert translation.expected_version == (view.version if view else 0)
    for event in translation.events:
        view = evolve(view, event.TYPE, stored(event.to_data()))
    return view


def run(
    events: Iterable[NativeEvent],
    profile: CustomerProfile | None = None,
    history: Sequence[PriorContact] = (),
    view: ContactView | None = None,
) -> tuple[ContactView | None, list[Translation]]:
    """Translate and fold each event in turn; return the final view and every translation."""
    translations = []
    for event in events:
        translation = translate(event, view, profile, history)
        view = apply(view, translation)
        translations.append(translation)
    return view, translations


def types(translation: Translation) -> list[str]:
    return [event.TYPE for event in translation.events]

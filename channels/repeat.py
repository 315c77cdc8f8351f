"""Repeat contacts: how often has this customer come back about the same thing?

The count goes on ContactArrived (the policy engine escalates the third one). It
covers the last 7 days up to this contact's own time, this contact included. A
contact listed twice (a replayed projection) or listed with a later time than
this one (events arriving out of order) does not inflate the count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from policies.vocabulary import Intent

REPEAT_WINDOW: Final = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class PriorContact:
    contact_id: str
    occurred_at: datetime  # when the contact arrived
    intent: Intent


def repeat_count(
    prior: Iterable[PriorContact],
    *,
    intent: Intent,
    now: datetime,
    contact_id: str | None = None,
    window: timedelta = REPEAT_WINDOW,
) -> int:
    """Contacts about `intent` in (now - window, now], counting this one (so >= 1)."""
    since = now - window
    same = {
        p.contact_id
        for p in prior
        if p.intent == intent and since < p.occurred_at <= now and p.contact_id != contact_id
    }
    return len(same) + 1


def remember(history: Mapping[str, PriorContact], event_type: str, data: Mapping[str, Any]) -> dict[str, PriorContact]:
    """Fold one contact event into a customer's history (contact id -> PriorContact).

    ContactArrived adds the contact; ContactIntentChanged re-labels it but keeps its
    arrival time. Anything else leaves the history as it was.
    """
    contact_id = data.get("contact_id")
    if event_type == "ContactArrived" and isinstance(contact_id, str):
        arrived = datetime.fromisoformat(data["occurred_at"])
        return {**history, contact_id: PriorContact(contact_id, arrived, Intent(data["intent"]))}
    if event_type == "ContactIntentChanged" and contact_id in history:
        assert isinstance(contact_id, str)
        return {**history, contact_id: replace(history[contact_id], intent=Intent(data["intent"]))}
    return dict(history)


def prune(
    history: Mapping[str, PriorContact], now: datetime, window: timedelta = REPEAT_WINDOW
) -> dict[str, PriorContact]:
    """Drop contacts too old to count any more (keeps a projection small)."""
    return {key: p for key, p in history.items() if p.occurred_at > now - window}

"""Repeat-contact counting over the last 7 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from channels.repeat import PriorContact, prune, remember, repeat_count
from policies.vocabulary import Intent

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=8)))
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("prior", "expected"),
    [
        ([], 1),
        ([PriorContact("a", NOW - DAY, Intent.FRAUD)], 2),
        ([PriorContact("a", NOW - DAY, Intent.FRAUD), PriorContact("b", NOW - 2 * DAY, Intent.FRAUD)], 3),
        ([PriorContact("a", NOW - DAY, Intent.LOAN)], 1),  # another intent
        ([PriorContact("a", NOW - 7 * DAY, Intent.FRAUD)], 1),  # exactly 7 days ago: outside
        ([PriorContact("a", NOW - 7 * DAY + timedelta(seconds=1), Intent.FRAUD)], 2),
        ([PriorContact("a", NOW + timedelta(minutes=1), Intent.FRAUD)], 1),  # later than this one
        ([PriorContact("a", NOW, Intent.FRAUD)], 2),  # same instant, another contact
        ([PriorContact("a", NOW - DAY, Intent.FRAUD)] * 2, 2),  # listed twice
        ([PriorContact("this", NOW - DAY, Intent.FRAUD)], 1),  # this contact itself
        ([PriorContact("a", (NOW - DAY).astimezone(UTC), Intent.FRAUD)], 2),  # offsets compare
    ],
)
def test_repeat_count(prior: list[PriorContact], expected: int) -> None:
    assert repeat_count(prior, intent=Intent.FRAUD, now=NOW, contact_id="this") == expected


def test_remember_folds_arrivals_and_intent_changes() -> None:
    arrived = {"contact_id": "c1", "occurred_at": (NOW - DAY).isoformat(), "intent": "speak_to_agent"}
    history = remember({}, "ContactArrived", arrived)
    history = remember(history, "ContactIntentChanged", {"contact_id": "c1", "intent": "fraud"})
    history = remember(history, "MessageReceived", {"contact_id": "c1"})
    history = remember(history, "ContactIntentChanged", {"contact_id": "unknown", "intent": "loan"})
    assert history == {"c1": PriorContact("c1", NOW - DAY, Intent.FRAUD)}
    assert repeat_count(history.values(), intent=Intent.FRAUD, now=NOW) == 2


def test_prune_drops_what_no_longer_counts() -> None:
    history = {"old": PriorContact("old", NOW - 8 * DAY, Intent.LOAN), "new": PriorContact("new", NOW, Intent.LOAN)}
    assert list(prune(history, NOW)) == ["new"]

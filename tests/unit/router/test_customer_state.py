"""The customer history the log follower keeps: recent contacts per customer, and nothing older."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from eventstore import RecordedEvent
from router.customers import CustomerState

START = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)


def arrived(contact_id: str, at: datetime, customer_id: str = "C1", intent: str = "loan") -> RecordedEvent:
    data = {"contact_id": contact_id, "customer_id": customer_id, "intent": intent, "occurred_at": at.isoformat()}
    return RecordedEvent(uuid.uuid4(), f"contact-default:{contact_id}", 1, 0, 0, "ContactArrived", data, {}, at)


def relabelled(contact_id: str, at: datetime, intent: str) -> RecordedEvent:
    data = {"contact_id": contact_id, "intent": intent}  # no customer id: known from the arrival
    return RecordedEvent(uuid.uuid4(), f"contact-default:{contact_id}", 2, 0, 0, "ContactIntentChanged", data, {}, at)


def test_a_contact_is_relabelled_in_its_customers_history() -> None:
    state = CustomerState()
    state.apply([arrived("k1", START), relabelled("k1", START + timedelta(minutes=1), "fraud")])
    assert [(p.contact_id, p.intent.value) for p in state.history("C1")] == [("k1", "fraud")]


def test_old_contacts_leave_the_history_and_the_contact_map_a_month_on() -> None:
    state = CustomerState()
    state.apply([arrived(f"k{day}", START + timedelta(days=day)) for day in range(30)])
    assert sorted(p.contact_id for p in state.history("C1")) == [f"k{day}" for day in range(22, 30)]
    assert set(state._contact_customer) == {f"k{day}" for day in range(22, 30)}  # noqa: SLF001

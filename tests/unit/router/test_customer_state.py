"""The customer history the log follower keeps: recent contacts per customer, and nothing older."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

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


class _StoreThatFailsAfter:
    """The in-memory store, until the database 'goes away' after `ok` appends."""

    def __init__(self, ok: int) -> None:
        from eventstore.memory import MemoryEventStore

        self.inner, self.ok = MemoryEventStore(), ok

    async def append(self, stream_id: str, events: object, expected: object) -> object:
        from eventstore import StoreUnavailableError

        if self.ok <= 0:
            raise StoreUnavailableError("connection refused")
        self.ok -= 1
        return await self.inner.append(stream_id, events, expected)  # type: ignore[arg-type]

    async def read_stream(self, stream_id: str) -> object:
        return await self.inner.read_stream(stream_id)

    async def read_last_events(self, stream_ids: list[str]) -> object:
        from eventstore import StoreUnavailableError

        if self.ok <= 0:
            raise StoreUnavailableError("connection refused")
        return await self.inner.read_last_events(stream_ids)


async def test_an_import_cut_short_by_the_store_says_what_is_stored_and_a_resend_finishes_it() -> None:
    import pytest

    from channels.customer_import import parse_import
    from router.customers import ImportIncomplete, import_profiles

    text = "".join(f'{{"customer_id": "C{i:04d}", "segment": "mass"}}\n' for i in range(10))
    report = parse_import(text, "jsonl", today=START.date())
    store = _StoreThatFailsAfter(ok=4)
    with pytest.raises(ImportIncomplete) as cut:
        await import_profiles(store, report, actor="admin", domain="default")  # type: ignore[arg-type]
    assert (cut.value.stored, cut.value.unchanged, cut.value.not_stored) == (4, 0, 6)
    store.ok = 100  # the database is back: the same file again
    outcome = await import_profiles(store, report, actor="admin", domain="default")  # type: ignore[arg-type]
    assert outcome.to_data()["stored"] == 6 and outcome.to_data()["unchanged"] == 4
    head = await store.inner.log_head()
    assert head.position == 10, "every profile once"


@pytest.mark.parametrize("ok", [0, 499, 500, 777, 1199])
async def test_a_long_import_cut_short_in_any_chunk_counts_right(ok: int) -> None:
    from channels.customer_import import parse_import
    from router.customers import ImportIncomplete, import_profiles

    text = "".join(f'{{"customer_id": "C{i:04d}", "segment": "mass"}}\n' for i in range(1200))
    report = parse_import(text, "jsonl", today=START.date())
    store = _StoreThatFailsAfter(ok=ok)
    with pytest.raises(ImportIncomplete) as cut:
        await import_profiles(store, report, actor="admin", domain="default")  # type: ignore[arg-type]
    assert (cut.value.stored, cut.value.unchanged, cut.value.not_stored) == (ok, 0, 1200 - ok)
    assert (await store.inner.log_head()).position == ok
    store.ok = 10_000
    outcome = await import_profiles(store, report, actor="admin", domain="default")  # type: ignore[arg-type]
    assert (outcome.to_data()["stored"], outcome.to_data()["unchanged"]) == (1200 - ok, ok)


async def test_a_profile_imported_again_after_another_replaced_it_is_current_again() -> None:
    # Before, the event id came from the content alone: the third import below was taken
    # for a repeat of the first ("unchanged"), and the customer stayed mass.
    from channels.customer_import import parse_import
    from eventstore.memory import MemoryEventStore
    from router.customers import CustomerState, import_profiles

    store, state = MemoryEventStore(), CustomerState()
    answers = []
    for segment in ("vip", "mass", "vip", "vip"):
        report = parse_import(f'{{"customer_id": "V1", "segment": "{segment}"}}\n', "jsonl", today=START.date())
        outcome = await import_profiles(store, report, actor="admin", domain="default")
        answers.append((outcome.to_data()["stored"], outcome.to_data()["unchanged"]))
    assert answers == [(1, 0), (1, 0), (1, 0), (0, 1)]
    from eventstore import LogCursor

    state.apply(await store.read_log(LogCursor()))
    assert state.directory.get("V1").segment == "vip"


async def test_two_copies_of_one_import_racing_store_the_profile_once() -> None:
    import asyncio

    from channels.customer_import import parse_import
    from eventstore.memory import MemoryEventStore
    from router.customers import import_profiles

    store = MemoryEventStore()
    report = parse_import('{"customer_id": "R1", "segment": "wealth"}\n', "jsonl", today=START.date())
    outcomes = await asyncio.gather(*(import_profiles(store, report, actor="admin", domain="default")
                                      for _ in range(4)))
    assert sorted(o.to_data()["stored"] for o in outcomes) == [0, 0, 0, 1]
    assert len(await store.read_stream("customer-default:R1")) == 1

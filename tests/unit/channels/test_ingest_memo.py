"""The ingest memo is always a prefix of the contact stream, however it learns of events.

It learns from three places: its own appends, the process's log follower (the router
appends to contact streams too), and the tail of the stream read after a failed append.
In memory, no I/O: `MemoryEventStore` is the store port's reference implementation.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from channels.events import contact_stream_id
from channels.view import fold
from eventstore import MemoryEventStore, NewEvent, RecordedEvent
from policies.vocabulary import Channel
from router.customers import CustomerState
from router.ingest import ContactMemo, IngestService, Known

from .samples import changed, example, native, raw


class CountingStore(MemoryEventStore):
    """Counts the stream reads and notes where each began."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_from: list[int] = []

    async def read_stream(self, stream_id: str, from_version: int = 1, limit: int | None = None) -> list[RecordedEvent]:
        self.reads_from.append(from_version)
        return await super().read_stream(stream_id, from_version, limit)

    async def tail(self, stream_id: str, from_version: int) -> list[RecordedEvent]:
        """What the log follower hands over (not counted: it is not the ingest's read)."""
        return await super().read_stream(stream_id, from_version)


def _webchat(event_type: str, event_id: str, changes: dict[str, Any] | None = None) -> tuple[Any, bytes]:
    payload = changed(example(Channel.WEBCHAT, event_type), {"event_id": event_id, **(changes or {})})
    return native(Channel.WEBCHAT, event_type, {"event_id": event_id, **(changes or {})}), raw(payload)


def _setup() -> tuple[CountingStore, CustomerState, ContactMemo, IngestService]:
    store, customers, memo = CountingStore(), CustomerState(), ContactMemo()
    return store, customers, memo, IngestService(store, customers, memo=memo)


async def _router_appends(store: CountingStore, stream_id: str, expected_version: int) -> list[RecordedEvent]:
    """What the router does between two gateway events: an event of its own on the stream."""
    await store.append(stream_id, [NewEvent("ContactQueued", {"queue_id": "q1"}, {"actor": "router"})],
                       expected_version)
    return await store.tail(stream_id, expected_version + 1)


async def _assert_memo_is_the_stream(store: MemoryEventStore, memo: ContactMemo, stream_id: str) -> None:
    events = await store.read_stream(stream_id)
    known = memo.get(stream_id)
    assert known is not None
    assert known.view == fold((e.type, e.data) for e in events)
    assert known.answers == Known.of(events).answers


async def test_the_follower_teaches_the_memo_the_routers_appends_so_no_read_is_needed() -> None:
    store, customers, memo, ingest = _setup()
    first = await ingest.ingest(*_webchat("session.started", "w-1"))
    stream_id = contact_stream_id(first.contact_id)
    customers.apply(await _router_appends(store, stream_id, 1))  # the log follower's batch
    second = await ingest.ingest(*_webchat("message.created", "w-2"))
    assert (first.position < second.position, second.duplicate) == (True, False)
    assert store.reads_from == []
    await _assert_memo_is_the_stream(store, memo, stream_id)


async def test_without_the_follower_only_the_streams_tail_is_read_after_a_conflict() -> None:
    store, customers, memo, ingest = _setup()
    stream_id = contact_stream_id((await ingest.ingest(*_webchat("session.started", "w-1"))).contact_id)
    await _router_appends(store, stream_id, 1)  # the follower has not handed it over yet
    receipt = await ingest.ingest(*_webchat("message.created", "w-2"))
    assert not receipt.duplicate
    assert store.reads_from == [2]  # the memo knew version 1
    await _assert_memo_is_the_stream(store, memo, stream_id)


async def test_a_repeat_stored_by_another_instance_is_answered_from_the_tail() -> None:
    store, customers, memo, ingest = _setup()
    stream_id = contact_stream_id((await ingest.ingest(*_webchat("session.started", "w-1"))).contact_id)
    other = IngestService(store, CustomerState())  # another instance, its own memo
    message = _webchat("message.created", "w-2")
    stored = await other.ingest(*message)
    again = await ingest.ingest(*message)
    assert (again.position, again.duplicate) == (stored.position, True)
    assert store.reads_from == [1, 2]  # the other instance knew nothing; this one knew version 1
    assert await store.stream_version(stream_id) == 2


async def test_own_events_handed_over_by_the_follower_first_are_not_applied_twice() -> None:
    store, customers, memo, ingest = _setup()
    stream_id = contact_stream_id((await ingest.ingest(*_webchat("session.started", "w-1"))).contact_id)
    known = memo.get(stream_id)
    assert known is not None
    message, body = _webchat("message.created", "w-2")
    translation = ingest._translate(message, known.view)
    events = ingest._events(message, translation, "sha")
    result = await store.append(stream_id, events, translation.expected_version)
    memo.learn(await store.tail(stream_id, 2))  # the follower got there before the request resumed
    known.appended(message.event_id, "sha", events, result, None)
    assert known.view is not None and (known.view.version, known.view.message_count) == (2, 1)
    await _assert_memo_is_the_stream(store, memo, stream_id)


async def test_the_follower_applies_only_the_next_event_of_a_remembered_contact() -> None:
    store, customers, memo, ingest = _setup()
    stream_id = contact_stream_id((await ingest.ingest(*_webchat("session.started", "w-1"))).contact_id)
    tail = await _router_appends(store, stream_id, 1)
    tail += await _router_appends(store, stream_id, 2)
    memo.learn(tail[1:])  # a gap (version 3 after 1): left to the expected-version check
    known = memo.get(stream_id)
    assert known is not None and known.version == 1
    memo.learn(tail)
    memo.learn(tail)  # handed over twice: applied once
    assert known.version == 3
    await _assert_memo_is_the_stream(store, memo, stream_id)


async def test_a_contact_another_worker_opened_is_learned_from_the_log() -> None:
    # Two workers on one store: the first event reaches worker A, the next one worker B. B's
    # follower hands it the contact's first event, so B appends at once: no append tried as a
    # new stream and refused, no read of the stream.
    store = CountingStore()
    customers_a, customers_b = CustomerState(), CustomerState()
    memo_b = ContactMemo()
    worker_a = IngestService(store, customers_a)
    worker_b = IngestService(store, customers_b, memo=memo_b)
    first = await worker_a.ingest(*_webchat("session.started", "w-1"))
    stream_id = contact_stream_id(first.contact_id)
    customers_b.apply(await store.tail(stream_id, 1))  # B's log follower
    second = await worker_b.ingest(*_webchat("message.created", "w-2"))
    assert not second.duplicate and second.position > first.position
    assert store.reads_from == []
    await _assert_memo_is_the_stream(store, memo_b, stream_id)


async def test_only_recently_opened_contacts_are_learned_from_the_log() -> None:
    # Replaying a long log at start-up must not rebuild the view of every contact ever opened.
    store = CountingStore()
    opened = await IngestService(store, CustomerState()).ingest(*_webchat("session.started", "w-1"))
    stream_id = contact_stream_id(opened.contact_id)
    (first,) = await store.tail(stream_id, 1)
    old = replace(first, recorded_at=first.recorded_at - timedelta(days=1))
    memo = ContactMemo()
    memo.learn([old])
    assert memo.get(stream_id) is None
    memo.learn([first])
    known = memo.get(stream_id)
    assert known is not None and known.version == 1

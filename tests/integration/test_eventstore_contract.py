"""One contract, two stores: every test here runs against memory and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from eventstore import (
    Snapshot,
    ANY,
    LOG_START,
    NO_STREAM,
    ConcurrencyError,
    DuplicateEventError,
    EventTooLargeError,
    InvalidAppendError,
    InvalidArgumentError,
    NewEvent,
    StreamAppend,
    Subscription,
)


def ev(kind: str = "ContactArrived", **data: Any) -> NewEvent:
    return NewEvent(type=kind, data=data or {"n": 1}, metadata={"correlation_id": "c-1", "actor": "test"})


S1 = "contact-default:c1"
S2 = "contact-default:c2"


async def settled_log(store: Any) -> list[Any]:
    """The whole readable log once no older transaction holds the horizon back.

    The xmin horizon is cluster-wide: a write transaction in any database of the server
    (another test run, a backup) delays reads of events committed after it began."""
    blocked = getattr(store, "blocked_by_horizon", None)
    for _ in range(200):
        if blocked is None or not await blocked():
            break
        await asyncio.sleep(0.05)
    return list(await store.read_log(LOG_START, 100_000))


async def log_size(store: Any) -> int:
    return len(await settled_log(store))


async def test_append_to_new_stream_and_read_back(store: Any) -> None:
    first, second = ev(n=1), ev("MessageReceived", n=2)
    result = await store.append(S1, [first, second], NO_STREAM)
    assert result.versions == (1, 2)
    assert result.positions[0] < result.positions[1]
    assert not result.duplicate
    events = await store.read_stream(S1)
    assert [(e.version, e.type, e.data) for e in events] == [(1, "ContactArrived", {"n": 1}), (2, "MessageReceived", {"n": 2})]
    assert events[0].event_id == first.event_id
    assert events[0].metadata == {"correlation_id": "c-1", "actor": "test"}
    assert events[0].recorded_at.tzinfo is not None
    assert await store.stream_version(S1) == 2
    assert await store.stream_version(S2) == 0


async def test_exact_expected_version(store: Any) -> None:
    await store.append(S1, [ev()], NO_STREAM)
    assert (await store.append(S1, [ev()], 1)).versions == (2,)
    with pytest.raises(ConcurrencyError) as info:
        await store.append(S1, [ev()], 1)
    assert (info.value.stream_id, info.value.actual) == (S1, 2)
    with pytest.raises(ConcurrencyError):
        await store.append(S1, [ev()], NO_STREAM)
    with pytest.raises(ConcurrencyError):
        await store.append(S2, [ev()], 3)
    assert await store.stream_version(S1) == 2
    assert await log_size(store) == 2


async def test_any_version_appends_at_the_end(store: Any) -> None:
    await store.append(S1, [ev()], ANY)
    assert (await store.append(S1, [ev(), ev()], ANY)).versions == (2, 3)


async def test_repeat_append_returns_first_result_and_stores_nothing(store: Any) -> None:
    events = [ev(n=1), ev(n=2)]
    first = await store.append(S1, events, NO_STREAM)
    await store.append(S1, [ev()], 2)
    again = await store.append(S1, events, NO_STREAM)  # a retry after a lost reply
    assert again.duplicate
    assert (again.versions, again.positions) == (first.versions, first.positions)
    assert await log_size(store) == 3


async def test_partial_overlap_is_an_error(store: Any) -> None:
    a, b = ev(), ev()
    await store.append(S1, [a], NO_STREAM)
    with pytest.raises(DuplicateEventError):
        await store.append(S1, [a, b], ANY)
    with pytest.raises(DuplicateEventError):
        await store.append(S1, [b, a], ANY)
    assert await log_size(store) == 1


async def test_same_id_in_another_stream_is_an_error(store: Any) -> None:
    a = ev()
    await store.append(S1, [a], NO_STREAM)
    with pytest.raises(DuplicateEventError) as info:
        await store.append(S2, [a], NO_STREAM)
    assert info.value.event_id == str(a.event_id)
    assert await store.stream_version(S2) == 0


class Unserialisable:
    pass


BAD_APPENDS: list[tuple[str, Any, Any, Any, str]] = [
    ("empty stream id", "", [ev()], ANY, "stream_id"),
    ("stream id without domain", "contact:c1", [ev()], ANY, "stream_id"),
    ("uppercase category", "Contact-default:c1", [ev()], ANY, "stream_id"),
    ("stream id with space", "contact-default:c 1", [ev()], ANY, "stream_id"),
    ("stream id not a string", 42, [ev()], ANY, "stream_id"),
    ("expected as text", S1, [ev()], "latest", "expected_version"),
    ("negative expected", S1, [ev()], -1, "expected_version"),
    ("boolean expected", S1, [ev()], True, "expected_version"),
    ("float expected", S1, [ev()], 1.5, "expected_version"),
    ("no events", S1, [], ANY, "events"),
    ("not an event", S1, [{"type": "X"}], ANY, "events[0]"),
    ("bad type name", S1, [NewEvent("no spaces allowed", {})], ANY, "events[0].type"),
    ("data not an object", S1, [NewEvent("X", [1, 2])], ANY, "events[0].data"),  # type: ignore[arg-type]
    ("data not serialisable", S1, [NewEvent("X", {"x": Unserialisable()})], ANY, "events[0].data"),
    ("set in data", S1, [NewEvent("X", {"x": {1, 2}})], ANY, "events[0].data"),
    ("NaN in data", S1, [NewEvent("X", {"x": [1.0, float("nan")]})], ANY, "events[0].data"),
    ("non-string key", S1, [NewEvent("X", {1: "a"})], ANY, "events[0].data"),
    ("actor not a string", S1, [NewEvent("X", {}, {"actor": 7})], ANY, "events[0].metadata.actor"),
    ("event id not a uuid", S1, [NewEvent("X", {}, {}, "abc")], ANY, "events[0].event_id"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("stream_id,events,expected,field", [b[1:] for b in BAD_APPENDS], ids=[b[0] for b in BAD_APPENDS])
async def test_bad_input_is_refused_and_stores_nothing(store: Any, stream_id: Any, events: Any, expected: Any, field: str) -> None:
    with pytest.raises(InvalidAppendError) as info:
        await store.append(stream_id, events, expected)
    assert info.value.field == field
    assert await log_size(store) == 0


async def test_duplicate_id_inside_one_append(store: Any) -> None:
    a = ev()
    with pytest.raises(InvalidAppendError):
        await store.append(S1, [a, a], ANY)
    assert await log_size(store) == 0


async def test_size_limit(store: Any) -> None:
    with pytest.raises(EventTooLargeError) as info:
        await store.append(S1, [ev(), NewEvent("X", {"blob": "x" * 5000})], ANY)
    assert info.value.field == "events[1]"
    assert await log_size(store) == 0
    await store.append(S1, [NewEvent("X", {"blob": "x" * 3000})], ANY)  # under the 4 KiB limit


async def test_read_log_in_order_with_cursor_and_category(store: Any) -> None:
    await store.append(S1, [ev(n=1)], ANY)
    await store.append("agent-default:a1", [ev("AgentLoggedIn", n=2)], ANY)
    await store.append(S2, [ev(n=3), ev(n=4)], ANY)
    everything = await settled_log(store)
    assert [e.data["n"] for e in everything] == [1, 2, 3, 4]
    assert [e.data["n"] for e in await store.read_log(everything[1].cursor)] == [3, 4]
    assert [e.data["n"] for e in await store.read_log(LOG_START, limit=2)] == [1, 2]
    contacts = await store.read_log(LOG_START, category="contact")
    assert [e.data["n"] for e in contacts] == [1, 3, 4]
    assert [e.category for e in contacts] == ["contact"] * 3


async def test_read_stream_from_version(store: Any) -> None:
    await store.append(S1, [ev(n=i) for i in range(1, 6)], NO_STREAM)
    assert [e.version for e in await store.read_stream(S1, from_version=3)] == [3, 4, 5]
    assert [e.version for e in await store.read_stream(S1, from_version=2, limit=2)] == [2, 3]
    assert await store.read_stream(S2) == []


async def test_read_last_events_gives_each_streams_newest(store: Any) -> None:
    await store.append(S1, [ev(n=i) for i in range(1, 4)], NO_STREAM)
    await store.append(S2, [ev(n=9)], NO_STREAM)
    await store.append("customer-other:c1", [ev(n=7)], NO_STREAM)  # another routing domain
    last = await store.read_last_events([S1, S2, "contact-default:none", S1, "customer-other:c1"])
    assert {k: (e.version, e.data["n"]) for k, e in last.items()} == {
        S1: (3, 3), S2: (1, 9), "customer-other:c1": (1, 7)}
    assert last[S1].stream_id == S1 and last[S1].position < last[S2].position
    assert await store.read_last_events([]) == {}


@pytest.mark.parametrize("stream_ids, field", [
    ("contact-default:c1", "stream_ids"),  # a string is not a list of ids
    ({S1}, "stream_ids"),
    ([S1, "not a stream"], "stream_ids[1]"),
    ([S1, 7], "stream_ids[1]"),
    ([S1] * 10_001, "stream_ids"),
])
async def test_read_last_events_refuses_bad_arguments(store: Any, stream_ids: Any, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as refused:
        await store.read_last_events(stream_ids)
    assert refused.value.field == field


async def test_concurrent_appends_to_separate_streams_all_succeed(store: Any) -> None:
    results = await asyncio.gather(*(store.append(f"contact-default:p{i}", [ev(i=i)], NO_STREAM) for i in range(200)))
    positions = [r.positions[0] for r in results]
    assert len(set(positions)) == 200
    assert await log_size(store) == 200


async def test_conflicting_appends_have_exactly_one_winner(store: Any) -> None:
    await store.append(S1, [ev()], NO_STREAM)
    outcomes = await asyncio.gather(*(store.append(S1, [ev(k=k)], 1) for k in range(20)), return_exceptions=True)
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(winners) == 1
    assert all(isinstance(o, ConcurrencyError) for o in outcomes if isinstance(o, Exception))
    assert [e.version for e in await store.read_stream(S1)] == [1, 2]


async def test_concurrent_duplicate_appends_store_one_copy(store: Any) -> None:
    events = [ev(n=1), ev(n=2)]
    results = await asyncio.gather(*(store.append(S1, events, NO_STREAM) for _ in range(20)))
    assert len({(r.versions, r.positions) for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert await log_size(store) == 2


async def test_one_callers_conflict_does_not_fail_another(store: Any) -> None:
    await store.append(S1, [ev()], NO_STREAM)
    stale = store.append(S1, [ev()], 7)
    fine = [store.append(f"contact-default:f{i}", [ev()], NO_STREAM) for i in range(30)]
    outcomes = await asyncio.gather(stale, *fine, return_exceptions=True)
    assert isinstance(outcomes[0], ConcurrencyError)
    assert all(not isinstance(o, Exception) for o in outcomes[1:])
    assert await log_size(store) == 31


async def test_one_id_sent_to_two_streams_at_once_fails_only_one(store: Any) -> None:
    """Both appends may land in one batch, where the database refuses the batch as a whole:
    the innocent appends beside them must still be stored."""
    shared = uuid.uuid4()
    twins = [store.append(f"contact-default:twin{i}", [NewEvent("E", {}, event_id=shared)], NO_STREAM)
             for i in range(2)]
    fine = [store.append(f"contact-default:g{i}", [ev()], NO_STREAM) for i in range(10)]
    outcomes = await asyncio.gather(*twins, *fine, return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes[:2]) == ["AppendResult", "DuplicateEventError"]
    assert all(not isinstance(o, Exception) for o in outcomes[2:])
    assert await log_size(store) == 11


async def test_log_head_is_the_newest_committed_event(store: Any) -> None:
    assert await store.log_head() == LOG_START
    await store.append(S1, [ev(), ev()], NO_STREAM)
    await store.append(S2, [ev()], NO_STREAM)
    assert await store.log_head() == (await settled_log(store))[-1].cursor


async def test_checkpoints(store: Any) -> None:
    assert await store.load_checkpoint("s") == LOG_START
    await store.append(S1, [ev()], ANY)
    cursor = (await settled_log(store))[0].cursor
    await store.save_checkpoint("s", cursor)
    assert await store.load_checkpoint("s") == cursor


async def test_snapshots_keep_the_furthest_cursor_of_the_newest_version(store: Any) -> None:
    assert await store.load_snapshot("r") is None
    await store.append(S1, [ev(), ev(), ev()], NO_STREAM)
    first, second, third = [e.cursor for e in await settled_log(store)]
    assert await store.save_snapshot("r", Snapshot(second, "v1", b"\x00second"))
    assert not await store.save_snapshot("r", Snapshot(first, "v1", b"older"))  # a slower writer
    assert not await store.save_snapshot("r", Snapshot(second, "v1", b"same place"))
    assert await store.load_snapshot("r") == Snapshot(second, "v1", b"\x00second")
    assert await store.save_snapshot("r", Snapshot(third, "v1", b"newer"))
    assert await store.save_snapshot("r", Snapshot(first, "v2", b"new code, from further back"))
    assert await store.load_snapshot("r") == Snapshot(first, "v2", b"new code, from further back")
    assert await store.load_snapshot("other") is None


async def test_subscription_catches_up_then_follows_live(store: Any) -> None:
    for i in range(5):
        await store.append(f"contact-default:s{i}", [ev(n=i)], NO_STREAM)
    seen: list[int] = []
    arrived = asyncio.Event()

    async def handle(events: Any) -> None:
        seen.extend(e.data["n"] for e in events)
        if len(seen) >= 8:
            arrived.set()

    sub = Subscription(store, "live", handle, batch_size=2, poll_interval_s=5)
    task = asyncio.create_task(sub.run())
    for i in range(5, 8):
        await store.append(f"contact-default:s{i}", [ev(n=i)], NO_STREAM)
    await asyncio.wait_for(arrived.wait(), 3)  # well under the 5 s poll: woken by the append
    sub.stop()
    await task
    assert seen == list(range(8))
    resumed: list[int] = []

    async def collect(events: Any) -> None:
        resumed.extend(e.data["n"] for e in events)

    await store.append("contact-default:s8", [ev(n=8)], NO_STREAM)
    await Subscription(store, "live", collect).catch_up()
    assert resumed == [8]  # from the checkpoint: no gap, no repeat


A1 = "agent-default:a1"


async def test_append_many_writes_every_part_in_one_transaction(store: Any) -> None:
    await store.append(S1, [ev()], NO_STREAM)
    results = await store.append_many([StreamAppend(S1, [ev(n=2)], 1), StreamAppend(A1, [ev("AgentReserved")], NO_STREAM)])
    assert [r.versions for r in results] == [(2,), (1,)]
    log = await settled_log(store)
    assert log[-1].tx_id == log[-2].tx_id  # one transaction


async def test_append_many_writes_nothing_when_one_part_is_stale(store: Any) -> None:
    await store.append(S1, [ev()], NO_STREAM)
    await store.append(A1, [ev()], NO_STREAM)
    with pytest.raises(ConcurrencyError) as info:
        await store.append_many([StreamAppend(S1, [ev()], 1), StreamAppend(A1, [ev()], NO_STREAM)])
    assert info.value.stream_id == A1
    assert await log_size(store) == 2


async def test_append_many_version_checks_without_events(store: Any) -> None:
    leader = "router-default:leader"
    await store.append(leader, [ev("LeaderElected")], NO_STREAM)
    ok = await store.append_many([StreamAppend(S1, [ev()], NO_STREAM), StreamAppend(leader, [], 1)])
    assert ok[1].versions == ()
    await store.append(leader, [ev("LeaderElected")], 1)  # a new leader: the old epoch is stale
    with pytest.raises(ConcurrencyError):
        await store.append_many([StreamAppend(S2, [ev()], NO_STREAM), StreamAppend(leader, [], 1)])
    assert await store.stream_version(S2) == 0


async def test_append_many_repeat_is_idempotent_and_partial_repeat_is_an_error(store: Any) -> None:
    group = [StreamAppend(S1, [ev()], NO_STREAM), StreamAppend(A1, [ev()], NO_STREAM)]
    first = await store.append_many(group)
    again = await store.append_many(group)
    assert [r.positions for r in again] == [r.positions for r in first] and all(r.duplicate for r in again)
    with pytest.raises(DuplicateEventError):
        await store.append_many([group[0], StreamAppend(S2, [ev()], NO_STREAM)])
    assert await log_size(store) == 2


@pytest.mark.parametrize("parts,field", [
    ([], "appends"),
    ([StreamAppend(S1, [], ANY)], "appends"),
    ([StreamAppend(S1, [ev()], ANY), StreamAppend(S1, [ev()], ANY)], "appends"),
    ([StreamAppend(S1, [ev()], ANY), StreamAppend("bad id", [ev()], ANY)], "appends[1].stream_id"),
])
async def test_append_many_bad_input(store: Any, parts: list[Any], field: str) -> None:
    with pytest.raises(InvalidAppendError) as info:
        await store.append_many(parts)
    assert info.value.field == field
    assert await log_size(store) == 0


async def test_concurrent_groups_never_overfill(store: Any) -> None:
    """Twenty offers race for one agent's single slot, each based on the same agent version."""
    await store.append(A1, [ev("AgentRegistered")], NO_STREAM)
    offers = [store.append_many([StreamAppend(f"contact-default:r{i}", [ev("OfferMade")], ANY),
                                 StreamAppend(A1, [ev("AgentReserved")], 1)]) for i in range(20)]
    outcomes = await asyncio.gather(*offers, return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert await store.stream_version(A1) == 2
    assert await log_size(store) == 3


async def test_many_groups_may_check_the_same_stream_at_once(store: Any) -> None:
    leader = "router-default:leader"
    await store.append(leader, [ev("LeaderElected")], NO_STREAM)
    groups = [store.append_many([StreamAppend(f"contact-default:g{i}", [ev()], NO_STREAM), StreamAppend(leader, [], 1)])
              for i in range(30)]
    results = await asyncio.gather(*groups)
    assert all(r[0].versions == (1,) for r in results)
    assert await log_size(store) == 31

"""The customer history stays bounded by time, and a state restored from its snapshot and fed
the rest of the log equals one fed the whole log, wherever the snapshot was taken."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest

from router.customers import CustomerState
from tests.unit.router.test_customer_state import START, arrived, relabelled


def test_customers_who_never_come_back_leave_the_history() -> None:
    state = CustomerState()
    state.apply([arrived(f"k{i}", START + timedelta(minutes=i), customer_id=f"C{i}") for i in range(1000)])
    assert len(state._history) == 1000  # noqa: SLF001
    state.apply([arrived("later", START + timedelta(days=10), customer_id="C-late")])
    assert set(state._history) == {"C-late"}  # noqa: SLF001
    assert set(state._contact_customer) == {"later"}  # noqa: SLF001
    assert state.history("C1") == ()


def test_a_customer_within_the_window_keeps_the_history() -> None:
    state = CustomerState()
    state.apply([arrived("k1", START, customer_id="C1"), arrived("k2", START + timedelta(days=5), customer_id="C1")])
    state.apply([arrived("k3", START + timedelta(days=10), customer_id="C2")])
    assert [p.contact_id for p in state.history("C1")] == ["k2"]


def _log() -> list:
    events = []
    for i in range(60):
        at = START + timedelta(hours=7 * i)
        events.append(arrived(f"k{i}", at, customer_id=f"C{i % 9}", intent="loan"))
        if i % 4 == 0:
            events.append(relabelled(f"k{i}", at + timedelta(minutes=2), "fraud"))
    return events


@pytest.mark.parametrize("split", [0, 1, 17, 40, 75])
def test_restored_and_fed_the_rest_equals_fed_the_whole_log(split: int) -> None:
    events = _log()
    whole = CustomerState()
    whole.apply(events)
    first = CustomerState()
    first.apply(events[:split])
    restored = CustomerState()
    restored.restore_state(pickle.loads(pickle.dumps(first.snapshot_state())))
    for event in events[split:]:  # in other batches than the whole log's
        restored.apply([event])
    skip = {"_also_fed", "directory"}
    assert ({k: v for k, v in vars(restored).items() if k not in skip}
            == {k: v for k, v in vars(whole).items() if k not in skip})

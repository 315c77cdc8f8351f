"""The contact view folded from a contact stream."""

from __future__ import annotations

from dataclasses import replace

import orjson

from channels.view import ContactStatus, ContactView, evolve, fold
from policies.vocabulary import Channel

from .samples import VIP, native, run, stored

CONTACT = {"contact_id": "c-1", "channel": "phone"}


def _stream_of_a_served_call() -> list[tuple[str, dict[str, object]]]:
    _, translations = run([native(Channel.PHONE, n) for n in ("call.started", "ivr.completed")], VIP)
    return [(e.TYPE, stored(e.to_data())) for t in translations for e in t.events]


def test_fold_gives_the_same_view_as_step_by_step_evolve() -> None:
    stream = _stream_of_a_served_call()
    view = fold(stream)
    assert view is not None and view.version == 2 and view.status is ContactStatus.WAITING
    assert view.facts is not None and view.facts.customer_id == "C1000123"
    assert view.opened_at is not None and view.arrived_at is not None and view.last_event_at == view.arrived_at
    assert fold([]) is None


def test_unknown_event_types_count_for_the_version_only() -> None:
    view = fold(_stream_of_a_served_call())
    assert view is not None
    later = evolve(view, "ContactQueued", {"contact_id": "x", "queue": "cards"})
    assert later.version == 3 and later.status is ContactStatus.WAITING
    assert later == replace(view, version=3)


def test_the_routers_assignment_connects_a_waiting_contact_only() -> None:
    view = fold(_stream_of_a_served_call())
    assert evolve(view, "ContactAssigned", CONTACT).status is ContactStatus.CONNECTED
    pending = ContactView("c-1", Channel.PHONE)
    assert evolve(pending, "ContactAssigned", CONTACT).status is ContactStatus.PENDING


def test_an_abandoned_contact_stays_abandoned_when_it_ends() -> None:
    _, translations = run([native(Channel.PHONE, n) for n in ("call.started", "ivr.completed", "call.hung_up")])
    view = fold((e.TYPE, stored(e.to_data())) for t in translations for e in t.events)
    assert view is not None and view.status is ContactStatus.ABANDONED and view.is_final
    assert (view.ended_by, view.end_cause) == ("customer", "normal_clearing")


def test_view_data_is_json_and_hides_the_callers_number() -> None:
    view = fold(_stream_of_a_served_call())
    assert view is not None
    data = view.to_data()
    text = orjson.dumps(data).decode()
    assert "13812345678" not in text and data["caller"] == "+86*******5678"
    assert data["status"] == "waiting" and data["facts"]["segment"] == "vip"
    assert "13812345678" not in repr(view)

"""The router service without a database: decision ids are derived from what is decided (a retry
is a repeat, a change is not), and a round that cannot be stored is retried at a walk."""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore import MemoryEventStore
from eventstore.errors import StoreUnavailableError
from router.service import RouterService, RouterSettings
from tests.unit.router.builders import NOW, POLICY, Log


def service() -> RouterService:
    return RouterService(MemoryEventStore(), lambda: POLICY, RouterSettings(instance="test"))


async def test_the_same_decision_gets_the_same_id_in_any_instance() -> None:
    data = {"contact_id": "c1", "agent_id": "a1", "at_s": 1.5}
    first = service()._new_event("contact-default:c1", 3, "OfferMade", data)
    again = service()._new_event("contact-default:c1", 3, "OfferMade", dict(reversed(list(data.items()))))
    assert first.event_id == again.event_id and first.event_id.version == 5


async def test_anything_decided_differently_gets_another_id() -> None:
    one = service()
    base = one._new_event("contact-default:c1", 3, "OfferMade", {"agent_id": "a1"}).event_id
    others = {
        one._new_event("contact-default:c2", 3, "OfferMade", {"agent_id": "a1"}).event_id,
        one._new_event("contact-default:c1", 4, "OfferMade", {"agent_id": "a1"}).event_id,
        one._new_event("contact-default:c1", 3, "OfferRevoked", {"agent_id": "a1"}).event_id,
        one._new_event("contact-default:c1", 3, "OfferMade", {"agent_id": "a2"}).event_id,
    }
    assert base not in others and len(others) == 4


class UnavailableStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def append_many(self, appends: Any) -> Any:
        self.attempts += 1
        raise StoreUnavailableError("the database is away")


async def test_rounds_back_off_while_the_store_is_unavailable() -> None:
    log = Log()
    log.agent("a1")
    log.contact("c1")
    store = UnavailableStore()
    router = RouterService(store, lambda: POLICY, RouterSettings(instance="test"), clock=lambda: NOW)
    router.state, router.epoch = log.state, 1  # leading, with a contact to place and an agent free
    loop = asyncio.create_task(router._decide_loop())
    router._kick.set()
    await asyncio.sleep(0.5)
    router.epoch = None
    router._kick.set()
    await asyncio.gather(loop, *router._landing, return_exceptions=True)
    assert 1 <= store.attempts <= 2  # a failed round waits before the next: no spin against a dead database
    assert "c1" in router._pending_contacts  # and the contact is decided again later

"""Decision event ids are derived from what is decided: a retry is a repeat, a change is not."""

from __future__ import annotations

from eventstore import MemoryEventStore
from router.service import RouterService, RouterSettings
from tests.unit.router.builders import POLICY


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

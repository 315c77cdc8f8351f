"""Deadlines are arithmetic, timers are I/O.

`timers_for_contact` / `timers_for_agent` compute, from state alone, every deadline
still to come, each with a deterministic id. The scheduler adapter arms one job per
id (re-arming replaces it), and when a job fires, `fire` re-checks the state at that
instant: a stale timer (the offer was accepted, the contact ended, the step applied
already) decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

from policies.engine import CompiledPolicy, callback_at
from policies.plan import StepAction
from policies.timeline import QueueInfo, merge as merge_requirements, queue_requirements
from policies.vocabulary import Presence

from . import events as ev
from .decide import Decision, Part, merge
from .state import DONE, OFFERED, WAITING, AgentState, ContactState, RouterState, answer_within_s


@dataclass(frozen=True, slots=True)
class Timer:
    key: str  # the scheduler's job id: the same deadline always has the same id
    due_s: float
    kind: str  # offer_expiry, escalate, sla, deadline, wrapup_end, disconnect
    ref: str  # the owner, a contact or agent id: the scheduler keeps each owner's timers together
    arg: str = ""


# A callback timer firing later than this after its slot was held up (the router was
# stopped): its slot is checked again against business hours and the customer's windows.
LATE_CALLBACK_S = 60.0


@dataclass(frozen=True, slots=True)
class TimerSettings:
    disconnect_grace_s: float = 15.0
    max_missed_offers: int = 3


def timers_for_contact(contact: ContactState) -> list[Timer]:
    plan = contact.plan
    if plan is None:
        return []
    out: list[Timer] = []
    cid = contact.contact_id
    if contact.callback_at_s is not None and contact.callback_owed and contact.agent_id is None:
        out.append(Timer(f"callback:{cid}", contact.callback_at_s, "callback", cid))
    # A deadline runs from the placement whatever happens next: a complaint's follow-up is due
    # in 48 h also (above all) when the call that raised it has ended.
    for deadline in plan.deadlines:
        if deadline.name not in contact.deadlines_done:
            out.append(Timer(f"deadline:{cid}:{deadline.name}", deadline.due_s, "deadline", cid, deadline.name))
    if contact.status == DONE:
        return out
    if contact.offer is not None:
        # Owned by the contact like its other timers (the scheduler arms and fires them per
        # owner); the offer it is about goes in `arg`.
        out.append(Timer(f"offer:{contact.offer.offer_id}", contact.offer.expires_at_s, "offer_expiry", cid,
                         contact.offer.offer_id))
    if contact.status in (WAITING, OFFERED):
        if contact.steps_done < len(plan.escalations) and contact.requirements is None:
            step = plan.escalations[contact.steps_done]
            out.append(Timer(f"escalate:{cid}:{contact.steps_done}", contact.queued_at_s + step.after_s,
                             "escalate", cid, str(contact.steps_done)))
        elif contact.requirements is not None and contact.max_wait_s is not None and contact.overflow_to:
            # Moved off its plan (a transfer to a queue): that queue's max wait, from the move.
            out.append(Timer(f"overflow:{cid}:{contact.moved_at_s}", contact.moved_at_s + contact.max_wait_s,
                             "overflow", cid, contact.queue_id or ""))
        if not contact.sla_breached:
            out.append(Timer(f"sla:{cid}:{contact.wait_from_s}", contact.wait_from_s + answer_within_s(contact),
                             "sla", cid))
    return out


def timers_for_agent(agent: AgentState, settings: TimerSettings) -> list[Timer]:
    out: list[Timer] = []
    if agent.wrapup_until_s is not None:
        out.append(Timer(f"wrapup:{agent.agent_id}", agent.wrapup_until_s, "wrapup_end", agent.agent_id))
    if (not agent.connected and agent.disconnected_at_s is not None
            and agent.presence in (Presence.AVAILABLE, Presence.AWAY)):
        out.append(Timer(f"disconnect:{agent.agent_id}:{agent.disconnected_at_s}",
                         agent.disconnected_at_s + settings.disconnect_grace_s, "disconnect", agent.agent_id))
    return out


def fire(state: RouterState, timer: Timer, now_s: float, settings: TimerSettings,
         queues: Mapping[str, QueueInfo] | None = None, home_language: str | None = None,
         *, policy: CompiledPolicy | None = None) -> list[Decision]:
    """What a timer that fires now decides, after re-checking the state ([] when stale).
    `queues`: the active policy's, for the SLA target and wrap-up of a queue an escalation
    moves the contact to (without them, the contact keeps its plan's), and for a transferred
    contact's overflow (with `home_language`, to resolve that queue's requirements).
    `policy`: the active policy, for the callback slot of a callback step applied late, or
    of a callback whose timer fires long after its slot."""
    if timer.kind == "escalate":
        return _escalate(state, timer, now_s, queues or {}, policy)
    if timer.kind == "overflow":
        return _overflow(state, timer, now_s, queues or {}, home_language)
    if timer.kind == "callback":
        return _callback(state, timer, now_s, policy)
    handler = _FIRE[timer.kind]
    return handler(state, timer, now_s, settings)


def _offer_expiry(state: RouterState, timer: Timer, now_s: float, settings: TimerSettings) -> list[Decision]:
    offer = state.offers.get(timer.arg)
    if offer is None or offer.contact_id != timer.ref or now_s < offer.expires_at_s:
        return []
    from .commands import close_offer

    decisions = [close_offer(state, offer, ev.OFFER_EXPIRED, "expired", now_s)]
    agent = state.agents[offer.agent_id]
    if agent.missed_in_row + 1 >= settings.max_missed_offers and agent.presence is Presence.AVAILABLE:
        decisions.append(_set_presence(agent, Presence.AWAY, f"missed {agent.missed_in_row + 1} offers in a row",
                                       now_s))
        # As when an agent goes away by itself: its other pending offers are handed on now,
        # not left to expire one by one while their customers wait for an agent gone away.
        decisions += [close_offer(state, other, ev.OFFER_REVOKED, "agent set away: missed offers in a row", now_s)
                      for other in list(agent.offers.values())
                      if other.offer_id != offer.offer_id and other.contact_id in state.contacts]
    return [merge("offer_expiry", decisions)]


def _escalate(state: RouterState, timer: Timer, now_s: float, queues: Mapping[str, QueueInfo],
              policy: CompiledPolicy | None = None) -> list[Decision]:
    contact = state.contacts.get(timer.ref)
    index = int(timer.arg)
    if contact is None or contact.plan is None or contact.status not in (WAITING, OFFERED) \
            or contact.steps_done != index or contact.requirements is not None:
        return []
    step = contact.plan.escalations[index]
    if now_s < contact.queued_at_s + step.after_s:
        return []
    data: dict[str, Any] = {
        "contact_id": contact.contact_id, "step": index, "action": step.action.value, "params": dict(step.params),
        "queue_id": step.queue, "requirements": [r.to_json() for r in step.requirements],
        "priority_delta": step.priority_delta, "source": step.source, "at_s": now_s,
    }
    queue = queues.get(step.queue) if step.queue else None
    if queue is not None and step.queue != contact.queue_id:  # its SLA clock runs on against that queue's target
        data.update(answer_within_s=queue.answer_within_s, wrapup_s=queue.wrapup_s)
    events: list[tuple[str, dict[str, Any]]] = [(ev.ESCALATION_APPLIED, data)]
    slot = _callback_slot(contact, step.params, now_s, policy) if step.action is StepAction.OFFER_CALLBACK else None
    if slot is not None:
        events.append((ev.CALLBACK_SCHEDULED, {"contact_id": contact.contact_id, "callback_at_s": slot, "at_s": now_s}))
    return [Decision("escalate", (Part(contact.stream_id, contact.version, tuple(events)),), contact.contact_id)]


def _callback_slot(contact: ContactState, params: Mapping[str, Any], now_s: float,
                   policy: CompiledPolicy | None) -> float | None:
    """The callback a callback step promises. Its slot was planned for the moment the step
    was due; a step applied later (the router was down, or the contact was placed again)
    would promise a slot already past, e.g. 19:55 at 21:30, and the callback would fall due
    at once, outside business hours and the customer's windows: it takes the next slot from now."""
    planned = params.get("callback_at_s")
    if policy is None or contact.facts is None or (planned is not None and float(planned) >= now_s):
        return None if planned is None else float(planned)
    return callback_at(policy, contact.facts, now_s, bool(params.get("within_business_hours")))


def _overflow(state: RouterState, timer: Timer, now_s: float, queues: Mapping[str, QueueInfo],
              home_language: str | None) -> list[Decision]:
    """A contact moved to a queue (a transfer) waited that queue's max wait: on to the queue it
    overflows to, with the same wait. Its hard requirements go along; the left queue's others
    are dropped and the new queue's added, as on the plan's own timeline."""
    contact = state.contacts.get(timer.ref)
    if contact is None or contact.status not in (WAITING, OFFERED) or contact.requirements is None \
            or contact.max_wait_s is None or not contact.overflow_to or contact.queue_id != timer.arg \
            or now_s < contact.moved_at_s + contact.max_wait_s:
        return []
    target = queues.get(contact.overflow_to)
    if target is None:  # the policy no longer has that queue: the contact stays where it is
        return []
    kept = tuple(r for r in contact.requirements if r.hard)
    if home_language is not None and contact.facts is not None:
        kept = merge_requirements(kept, queue_requirements(target, contact.facts, home_language))
    data = {"contact_id": contact.contact_id, "queue_id": target.id, "requirements": [r.to_json() for r in kept],
            "reason": "max_wait_overflow",
            "detail": f"waited {contact.max_wait_s:.0f} s in {contact.queue_id}", "same_wait": True,
            "answer_within_s": target.answer_within_s, "wrapup_s": target.wrapup_s,
            "max_wait_s": target.max_wait_s, "overflow_to": target.overflow_to, "at_s": now_s}
    return [Decision("overflow", (Part(contact.stream_id, contact.version, ((ev.CONTACT_REQUEUED, data),)),),
                     contact.contact_id)]


def _sla(state: RouterState, timer: Timer, now_s: float, settings: TimerSettings) -> list[Decision]:
    contact = state.contacts.get(timer.ref)
    if contact is None or contact.plan is None or contact.status not in (WAITING, OFFERED) or contact.sla_breached \
            or now_s < contact.wait_from_s + answer_within_s(contact):
        return []
    from .commands import named_agent_fallback

    data = {"contact_id": contact.contact_id, "queue_id": contact.queue_id,
            "answer_within_s": answer_within_s(contact), "at_s": now_s}
    events: tuple[tuple[str, dict[str, Any]], ...] = ((ev.SLA_BREACHED, data),)
    fallback = named_agent_fallback(contact, "the named agent did not answer within the SLA target", now_s)
    if fallback is not None:  # and any offer to that agent stays open: should it be accepted, fine
        events += (fallback,)
    return [Decision("sla", (Part(contact.stream_id, contact.version, events),), contact.contact_id)]


def _deadline(state: RouterState, timer: Timer, now_s: float, settings: TimerSettings) -> list[Decision]:
    contact = state.contacts.get(timer.ref)
    if contact is None or contact.plan is None or timer.arg in contact.deadlines_done:
        return []
    # The due time is the plan's, not the timer's: a timer fired again after a stale append
    # is a copy due at the retry, and a plan placed again may have moved or dropped the deadline.
    due_s = next((d.due_s for d in contact.plan.deadlines if d.name == timer.arg), None)
    if due_s is None or now_s < due_s:
        return []
    data = {"contact_id": contact.contact_id, "name": timer.arg, "due_s": due_s, "at_s": now_s,
            "status": contact.status, "agent_id": contact.agent_id}
    return [Decision("deadline", (Part(contact.stream_id, contact.version, ((ev.FOLLOW_UP_DUE, data),)),),
                     contact.contact_id)]


def _callback(state: RouterState, timer: Timer, now_s: float, policy: CompiledPolicy | None) -> list[Decision]:
    contact = state.contacts.get(timer.ref)
    if contact is None or contact.callback_at_s is None or not contact.callback_owed or contact.agent_id is not None \
            or now_s < contact.callback_at_s:
        return []
    if now_s > contact.callback_at_s + LATE_CALLBACK_S and policy is not None and contact.facts is not None:
        # Fired long after its slot (the router was stopped across it): calling back now
        # could be at 21:30 for a 15:00 slot, outside business hours and the customer's
        # windows. The next slot from now is promised instead (now itself when it fits).
        slot = callback_at(policy, contact.facts, now_s, contact.callback_within_hours)
        if slot is not None and slot > now_s:
            data = {"contact_id": contact.contact_id, "callback_at_s": slot, "at_s": now_s,
                    "reason": f"the slot at {contact.callback_at_s:.0f} passed while the router was stopped"}
            return [Decision("callback", (Part(contact.stream_id, contact.version, ((ev.CALLBACK_SCHEDULED, data),)),),
                             contact.contact_id)]
    data = {"contact_id": contact.contact_id, "callback_at_s": contact.callback_at_s, "at_s": now_s}
    return [Decision("callback", (Part(contact.stream_id, contact.version, ((ev.CALLBACK_DUE, data),)),),
                     contact.contact_id)]


def _wrapup_end(state: RouterState, timer: Timer, now_s: float, settings: TimerSettings) -> list[Decision]:
    agent = state.agents.get(timer.ref)
    if agent is None or agent.wrapup_until_s is None or now_s < agent.wrapup_until_s:
        return []
    from .commands import end_wrapup

    return [end_wrapup(agent, now_s, "wrap-up time is over")]


def _disconnect(state: RouterState, timer: Timer, now_s: float, settings: TimerSettings) -> list[Decision]:
    agent = state.agents.get(timer.ref)
    if agent is None or agent.connected or agent.disconnected_at_s is None \
            or now_s < agent.disconnected_at_s + settings.disconnect_grace_s:
        return []
    from .commands import close_offer

    decisions = [close_offer(state, offer, ev.OFFER_REVOKED, "agent disconnected", now_s)
                 for offer in list(agent.offers.values())]
    decisions.append(_set_presence(agent, Presence.DISCONNECTED, "the desk disconnected and did not come back",
                                   now_s))
    return [merge("disconnect", decisions)]


def _set_presence(agent: AgentState, presence: Presence, reason: str, now_s: float) -> Decision:
    data = {"agent_id": agent.agent_id, "state": presence.value, "reason": reason, "at_s": now_s}
    return Decision("presence", (Part(agent.stream_id, agent.version, ((ev.AGENT_STATE_CHANGED, data),)),),
                    agent_id=agent.agent_id)


_FIRE = {
    "offer_expiry": _offer_expiry,
    "sla": _sla,
    "deadline": _deadline,
    "wrapup_end": _wrapup_end,
    "disconnect": _disconnect,
}


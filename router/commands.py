"""What an agent's desk asks for, and the router's reactions to what customers do.

Pure: each function checks the request against the state and returns a Decision (or
raises CommandError with a code for the desk's `error` frame). Nothing changes until
the service appends the decision at the versions it was based on.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from policies.engine import CompiledPolicy
from policies.plan import Requirement, RequirementKind
from policies.timeline import merge as merge_requirements, queue_requirements
from policies.vocabulary import Channel, Presence

from . import events as ev
from .decide import Decision, Part, merge, qualification_gaps, requirements_of, roster_can_serve
from .state import ASSIGNED, DONE, OFFERED, WAITING, AgentState, ContactState, Offer, RouterState

DEFAULT_WRAPUP_S = 30.0
# A transferred contact jumps its new queue: it lifts the contact's boost to this, once. Added
# per transfer, a contact passed back and forth outranked lost cards and fraud in ten moves.
TRANSFER_BOOST = 100.0


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def close_offer(state: RouterState, offer: Offer, event_type: str, reason: str, now_s: float) -> Decision:
    contact = state.contacts[offer.contact_id]
    agent = state.agents[offer.agent_id]
    data = {"offer_id": offer.offer_id, "contact_id": offer.contact_id, "agent_id": offer.agent_id,
            "reason": reason, "at_s": now_s}
    released = {"agent_id": agent.agent_id, "offer_id": offer.offer_id, "contact_id": offer.contact_id,
                "channel": offer.channel.value, "reason": _release_reason(event_type), "at_s": now_s}
    closed: tuple[tuple[str, dict[str, Any]], ...] = ((event_type, data),)
    fallback = named_agent_fallback(contact, f"{offer.agent_id} did not take it: {reason}", now_s)
    if fallback is not None:
        closed += (fallback,)
    return Decision("close_offer", (Part(contact.stream_id, contact.version, closed),
                                    Part(agent.stream_id, agent.version, ((ev.AGENT_RELEASED, released),))),
                    contact.contact_id, agent.agent_id)


def named_agent_fallback(contact: ContactState, why: str, now_s: float) -> tuple[str, dict[str, Any]] | None:
    """A contact transferred to a named agent goes back to its queue when that agent does not
    take it (a reject, an offer expired or withdrawn, no answer within the SLA target): the
    one agent it waits for may be on a long call or gone for the day, and otherwise nobody
    else could ever be offered it. It keeps every other hard requirement and its place: the
    wait goes on (same SLA clock), and the agent who did not take it is not offered it again.
    None when the contact is not waiting for a named agent."""
    requirements = contact.requirements or ()
    if contact.status not in (WAITING, OFFERED) or not any(r.kind is RequirementKind.AGENT for r in requirements):
        return None
    kept = [r.to_json() for r in requirements if r.kind is not RequirementKind.AGENT]
    return (ev.CONTACT_REQUEUED, {"contact_id": contact.contact_id, "queue_id": contact.queue_id,
                                  "requirements": kept, "reason": "named_agent_fallback", "detail": why[:200],
                                  "same_wait": True, "at_s": now_s})


def _release_reason(event_type: str) -> str:
    return {ev.OFFER_EXPIRED: "expired", ev.OFFER_REJECTED: "rejected"}.get(event_type, "revoked")


def _agent(state: RouterState, agent_id: str) -> AgentState:
    agent = state.agents.get(agent_id)
    if agent is None or agent.profile is None:
        raise CommandError("unknown_agent", f"no agent {agent_id!r}")
    return agent


def _own_offer(state: RouterState, agent_id: str, offer_id: object, now_s: float) -> Offer:
    if not isinstance(offer_id, str) or not offer_id:
        raise CommandError("invalid_message", "offer_id is required")
    offer = state.offers.get(offer_id)
    if offer is None:
        raise CommandError("offer_not_pending", "this offer is not pending any more (taken, expired or revoked)")
    if offer.agent_id != agent_id:
        raise CommandError("not_your_offer", "this offer was made to another agent")
    if now_s >= offer.expires_at_s:
        raise CommandError("offer_expired", "this offer has expired")
    if offer.contact_id not in state.contacts:  # finished and forgotten before its offer was revoked
        raise CommandError("contact_ended", "the customer has left; this offer is being withdrawn")
    return offer


def unfit_for_offer(state: RouterState, offer: Offer) -> tuple[str, ...]:
    """Why the agent can no longer take this pending offer, () when it still can.

    An offer is decided on the agent's profile at the time; an admin may change the profile
    while it is pending (skills, languages, channels, capacity). Accepting it then would
    assign a contact against a hard requirement or above the agent's capacity."""
    agent, contact = state.agents.get(offer.agent_id), state.contacts.get(offer.contact_id)
    if agent is None or agent.snapshot is None or contact is None:
        return ("the agent is not on the roster",)
    if agent.profile is offer.profile:
        return ()  # unchanged: the offer stands as decided (an escalation since does not undo it)
    gaps = qualification_gaps(agent.snapshot, requirements_of(contact), offer.channel)
    if gaps:
        return gaps
    profile, load = agent.profile, agent.snapshot.load
    assert profile is not None
    # Why the agent's earlier pending offers count too: each holds a place, as when offers are
    # made (the load and the pending offers within the capacity). Counted alone, every one of
    # two offers fitted a capacity cut from two to one: none was withdrawn, and the agent took
    # one while the other still held a place. The earliest keep their places, the latest go.
    earlier = list(itertools.takewhile(lambda o: o.offer_id != offer.offer_id, agent.offers.values()))
    on_channel = load.get(offer.channel, 0) + sum(1 for o in earlier if o.channel is offer.channel)
    if on_channel + 1 > profile.channels.get(offer.channel, 0):
        return (f"no room left on {offer.channel.value} (capacity {profile.channels.get(offer.channel, 0)})",)
    if sum(load.values()) + len(earlier) + 1 > profile.total_capacity:
        return (f"no room left in total (capacity {profile.total_capacity})",)
    return ()


def accept(state: RouterState, agent_id: str, offer_id: object, now_s: float) -> Decision:
    offer = _own_offer(state, agent_id, offer_id, now_s)
    contact, agent = state.contacts[offer.contact_id], state.agents[agent_id]
    if contact.status == DONE:
        raise CommandError("contact_ended", "the customer has left; this offer is being withdrawn")
    unfit = unfit_for_offer(state, offer)
    if unfit:
        raise CommandError("offer_withdrawn", f"your profile changed since this offer was made ({unfit[0]}); "
                                              "it is being withdrawn")
    base = {"offer_id": offer.offer_id, "contact_id": contact.contact_id, "agent_id": agent_id, "at_s": now_s}
    assigned = {**base, "channel": offer.channel.value, "queue_id": contact.queue_id,
                "waited_s": round(now_s - contact.wait_from_s, 3)}
    engaged = {**base, "channel": offer.channel.value}
    taken = Decision("accept", (Part(contact.stream_id, contact.version,
                                     ((ev.OFFER_ACCEPTED, base), (ev.CONTACT_ASSIGNED, assigned))),
                                Part(agent.stream_id, agent.version, ((ev.AGENT_ENGAGED, engaged),))),
                     contact.contact_id, agent_id)
    # Why the agent's later offers that no longer fit go in the same append, and first: after
    # a capacity cut the router withdraws them in its next round, and an accept landing before
    # that round engaged the agent while they still held places beyond the capacity. Released
    # ahead of the engagement on the agent's stream, they never count with it.
    withdrawn = [close_offer(state, other, ev.OFFER_REVOKED, f"the agent's profile changed: {unfit[0]}"[:200], now_s)
                 for other in agent.offers.values()
                 if other.offer_id != offer.offer_id and (unfit := unfit_for_offer(state, other))]
    if not withdrawn:
        return taken
    return replace(merge("accept", [*withdrawn, taken]), contact_id=contact.contact_id, agent_id=agent_id)


def reject(state: RouterState, agent_id: str, offer_id: object, reason: object, now_s: float) -> Decision:
    offer = _own_offer(state, agent_id, offer_id, now_s)
    text = reason if isinstance(reason, str) and reason else "rejected by the agent"
    return close_offer(state, offer, ev.OFFER_REJECTED, text[:200], now_s)


def _held_contact(state: RouterState, agent_id: str, contact_id: object) -> ContactState:
    contact = state.contacts.get(contact_id) if isinstance(contact_id, str) else None
    agent = state.agents[agent_id]
    if contact is None or contact_id not in agent.contacts:
        raise CommandError("not_your_contact", "you do not hold this contact")
    return contact


def _wrapup_s(contact: ContactState) -> float:
    """The wrap-up of the queue the contact is in now (a transfer may have moved it)."""
    if contact.wrapup_s is not None:
        return contact.wrapup_s
    return contact.plan.wrapup_s if contact.plan is not None else DEFAULT_WRAPUP_S


def _free(agent: AgentState, contact: ContactState, reason: str, now_s: float) -> tuple[tuple[str, dict[str, Any]], ...]:
    channel = agent.contacts.get(contact.contact_id, Channel.PHONE).value
    freed = {"agent_id": agent.agent_id, "contact_id": contact.contact_id, "channel": channel,
             "reason": reason, "at_s": now_s}
    wrapup = {"agent_id": agent.agent_id, "contact_id": contact.contact_id, "at_s": now_s,
              "until_s": now_s + _wrapup_s(contact)}
    return ((ev.AGENT_FREED, freed), (ev.AGENT_WRAPUP_STARTED, wrapup))


def complete(state: RouterState, agent_id: str, contact_id: object, disposition: object, now_s: float) -> Decision:
    _agent(state, agent_id)
    contact = _held_contact(state, agent_id, contact_id)
    if not isinstance(disposition, str) or not disposition.strip():
        raise CommandError("invalid_message", "disposition is required (e.g. 'resolved', 'follow_up')")
    agent = state.agents[agent_id]
    data = {"contact_id": contact.contact_id, "agent_id": agent_id, "disposition": disposition[:100], "at_s": now_s}
    return Decision("complete", (Part(contact.stream_id, contact.version, ((ev.CONTACT_COMPLETED, data),)),
                                 Part(agent.stream_id, agent.version, _free(agent, contact, "completed", now_s))),
                    contact.contact_id, agent_id)


def end_wrapup(agent: AgentState, now_s: float, reason: str) -> Decision:
    data = {"agent_id": agent.agent_id, "at_s": now_s, "reason": reason}
    return Decision("wrapup_end", (Part(agent.stream_id, agent.version, ((ev.AGENT_WRAPUP_ENDED, data),)),),
                    agent_id=agent.agent_id)


def wrapup_done(state: RouterState, agent_id: str, now_s: float) -> Decision:
    agent = _agent(state, agent_id)
    if agent.wrapup_until_s is None:
        raise CommandError("not_in_wrapup", "you are not in wrap-up")
    return end_wrapup(agent, now_s, "the agent finished wrap-up")


def set_presence(state: RouterState, agent_id: str, wanted: object, reason: object, now_s: float) -> Decision:
    agent = _agent(state, agent_id)
    if wanted != "available" and wanted != "away":
        raise CommandError("invalid_state", "state must be 'available' or 'away'")
    presence = Presence(str(wanted))
    data = {"agent_id": agent_id, "state": presence.value, "at_s": now_s,
            "reason": reason[:200] if isinstance(reason, str) else ""}
    decisions = [Decision("presence", (Part(agent.stream_id, agent.version, ((ev.AGENT_STATE_CHANGED, data),)),),
                          agent_id=agent_id)]
    if presence is Presence.AWAY:  # offers still pending would only expire: hand them on now
        decisions += [close_offer(state, o, ev.OFFER_REVOKED, "agent went away", now_s) for o in agent.offers.values()]
    return merge("presence", decisions)


def transfer(state: RouterState, agent_id: str, contact_id: object, to_queue: object, to_agent: object,
             note: object, now_s: float, *, policy: CompiledPolicy | None = None) -> Decision:
    """Hand a held contact to a queue of the active `policy` or to a named agent.

    The contact keeps its hard requirements either way, and a queue adds its own (a transfer
    to the supervisors' complaints queue needs a supervisor). A transfer that nobody on the
    roster could ever take is refused here, with the reason, rather than left waiting
    silently. Without a policy (pure tests) any queue id is taken as it is."""
    agent = _agent(state, agent_id)
    contact = _held_contact(state, agent_id, contact_id)
    if contact.status == DONE:
        # The customer hung up and the router has not freed the agent yet: there is nobody
        # to hand on, and a queue would offer the ended contact to another agent.
        raise CommandError("contact_ended", "the customer has left; there is nothing to transfer (complete it)")
    if bool(to_queue) == bool(to_agent) or not isinstance(to_queue or to_agent, str):
        raise CommandError("invalid_message", "give exactly one of to_queue or to_agent")
    hard = tuple(r for r in requirements_of(contact) if r.hard and r.kind is not RequirementKind.AGENT)
    channel = contact.facts.channel if contact.facts is not None else None
    if to_queue and policy is not None:
        queue = policy.queues.get(str(to_queue))
        if queue is None:
            raise CommandError("unknown_queue", f"no queue {str(to_queue)[:80]!r} in the active policy; "
                                                f"queues: {', '.join(sorted(policy.queues))}")
        if contact.facts is not None:
            hard = merge_requirements(hard, queue_requirements(queue, contact.facts, policy.home_language))
        if channel is not None and not roster_can_serve(state, hard, channel):
            wanted = ", ".join(r.describe() for r in hard) or "no requirement"
            raise CommandError("no_agent_can_serve", f"no agent on the roster serves {channel.value} with {wanted} "
                                                     f"in queue {to_queue}")
    if to_agent:
        target_agent = state.agents.get(str(to_agent))
        if target_agent is None or to_agent == agent_id or target_agent.snapshot is None:
            raise CommandError("unknown_agent", f"cannot transfer to agent {str(to_agent)[:80]!r}")
        gaps = qualification_gaps(target_agent.snapshot, hard, channel) if channel is not None else ()
        if gaps:
            raise CommandError("agent_cannot_serve", f"agent {to_agent} cannot take this contact: {'; '.join(gaps)}")
    target = (Requirement(RequirementKind.AGENT, str(to_agent), hard=True),) if to_agent else ()
    base = {"contact_id": contact.contact_id, "at_s": now_s}
    moved = {**base, "from_agent": agent_id, "to_queue": to_queue or None, "to_agent": to_agent or None,
             "note": note[:1000] if isinstance(note, str) else ""}
    requeued = {**base, "queue_id": to_queue or contact.queue_id, "requirements": [r.to_json() for r in hard + target],
                "reason": "transfer", "priority_boost": max(0.0, TRANSFER_BOOST - contact.priority_boost)}
    if to_queue and policy is not None:  # the new wait is held to that queue's SLA target and max wait
        queue = policy.queues[str(to_queue)]
        requeued.update(answer_within_s=queue.answer_within_s, wrapup_s=queue.wrapup_s,
                        max_wait_s=queue.max_wait_s, overflow_to=queue.overflow_to)
    return Decision("transfer", (
        Part(contact.stream_id, contact.version, ((ev.CONTACT_TRANSFERRED, moved), (ev.CONTACT_REQUEUED, requeued))),
        Part(agent.stream_id, agent.version, _free(agent, contact, "transferred", now_s))),
        contact.contact_id, agent_id)


def reactions(state: RouterState, contact: ContactState, now_s: float) -> list[Decision]:
    """A customer who left: revoke a pending offer, or free the agent who had the contact.
    An offer the agent can no longer take (its profile changed): revoke it."""
    if contact.status == OFFERED and contact.offer is not None and contact.offer.offer_id in state.offers:
        unfit = unfit_for_offer(state, contact.offer)
        if unfit:
            return [close_offer(state, contact.offer, ev.OFFER_REVOKED,
                                f"the agent's profile changed: {unfit[0]}"[:200], now_s)]
    if contact.status != DONE:
        return []
    if contact.offer is not None and contact.offer.offer_id in state.offers:
        return [close_offer(state, contact.offer, ev.OFFER_REVOKED, "the customer left", now_s)]
    agent = state.agents.get(contact.agent_id or "")
    if agent is not None and contact.contact_id in agent.contacts:
        return [Decision("customer_left", (Part(agent.stream_id, agent.version,
                                                _free(agent, contact, "the customer ended the contact", now_s)),),
                         contact.contact_id, agent.agent_id)]
    return []


__all__ = ["ASSIGNED", "CommandError", "accept", "complete", "reactions", "reject", "set_presence", "transfer",
           "wrapup_done"]

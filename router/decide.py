"""Routing decisions: pure functions of (state, policy, now) that say what to append.

No I/O, no clock, no randomness: ids are derived from what is decided. A Decision
names every stream it writes and the version it was based on; the service appends
its parts atomically, so a decision made on stale state fails instead of landing.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from policies.eligibility import ineligibility, sort_key
from policies.engine import CompiledPolicy, NoMatchingRule, evaluate
from policies.plan import Deadline, Requirement, RequirementKind, RoutingPlan, requirements_at
from policies.vocabulary import AgentSnapshot, Channel, ContactFacts, Presence, Strategy

from . import events as ev
from .state import ContactState, RouterState

_IDS = uuid.UUID("8f6d3c1e-2b7a-4e59-9d4f-0c1a2b3c4d5e")


@dataclass(frozen=True, slots=True)
class Part:
    stream_id: str
    expected_version: int
    events: tuple[tuple[str, dict[str, Any]], ...] = ()  # none: only check the version


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    parts: tuple[Part, ...]
    contact_id: str | None = None
    agent_id: str | None = None


def merge(kind: str, decisions: Iterable[Decision]) -> Decision:
    """One atomic decision from several made on the same state: parts on the same stream
    (all based on the same version) have their events appended one after the other."""
    merged: dict[str, Part] = {}
    contact_id = agent_id = None
    for decision in decisions:
        contact_id = contact_id or decision.contact_id
        agent_id = agent_id or decision.agent_id
        for part in decision.parts:
            known = merged.get(part.stream_id)
            merged[part.stream_id] = part if known is None else Part(
                part.stream_id, known.expected_version, known.events + part.events)
    return Decision(kind, tuple(merged.values()), contact_id, agent_id)


def derived_id(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, ":".join(str(p) for p in parts)))


# -- what is in force for a waiting contact -------------------------------------------------


def applied_until_s(contact: ContactState) -> float:
    """The waiting time up to which escalation steps have been applied (by their events)."""
    plan = contact.plan
    if plan is None or contact.steps_done == 0:
        return 0.0
    return plan.escalations[min(contact.steps_done, len(plan.escalations)) - 1].after_s


def requirements_of(contact: ContactState) -> tuple[Requirement, ...]:
    if contact.requirements is not None:
        return contact.requirements
    assert contact.plan is not None
    return requirements_at(contact.plan, applied_until_s(contact))


def priority_of(contact: ContactState, now_s: float) -> float:
    plan = contact.plan
    assert plan is not None
    waited_s = max(0.0, now_s - contact.queued_at_s)
    raised = sum(s.priority_delta for s in plan.escalations[: contact.steps_done])
    return plan.priority + plan.priority_growth_per_min * waited_s / 60.0 + raised + contact.priority_boost


# -- placing a contact --------------------------------------------------------------------


def place(state: RouterState, contact: ContactState, policy: CompiledPolicy, now_s: float) -> Decision:
    """Evaluate the policy for an arrived contact (or one whose intent changed while waiting)."""
    assert contact.facts is not None
    base = {"contact_id": contact.contact_id, "at_s": now_s}
    try:
        plan = evaluate(policy, contact.facts, now_s)
    except NoMatchingRule as exc:
        data = {**base, "reason": "no rule of the active policy matches this contact", "details": str(exc),
                "policy_version": policy.version}
        return Decision("unroutable", (Part(contact.stream_id, contact.version, ((ev.CONTACT_UNROUTABLE, data),)),),
                        contact.contact_id)
    queued_at_s = contact.queued_at_s if contact.plan is not None else now_s
    if contact.plan is not None and contact.plan.deadlines:
        # A re-placement (the intent stated again) keeps the deadlines already running: a
        # complaint's follow-up counts from when it was first placed, not from the restating.
        running = {d.name: d.due_s for d in contact.plan.deadlines}
        plan = replace(plan, deadlines=tuple(Deadline(d.name, min(d.due_s, running.get(d.name, d.due_s)))
                                             for d in plan.deadlines))
    queued = {
        **base, "queue_id": plan.queue_id, "rule_id": plan.rule_id, "policy_version": plan.policy_version,
        "priority": plan.priority, "requirements": [r.to_json() for r in plan.requirements],
        "plan": plan.to_json(), "queued_at_s": queued_at_s,
    }
    # The SLA clock runs from the first queueing (a re-placement keeps it): the event states
    # the deadline the `sla` timer is armed for, under this plan.
    sla = {**base, "queue_id": plan.queue_id, "answer_within_s": plan.answer_within_s,
           "due_at_s": queued_at_s + plan.answer_within_s}
    events: list[tuple[str, dict[str, Any]]] = [(ev.CONTACT_QUEUED, queued), (ev.SLA_TIMER_STARTED, sla)]
    gaps = servability_gaps(state, contact.facts, plan)
    if gaps:
        events.append((ev.CONTACT_UNSERVABLE, {**base, "gaps": gaps}))
    return Decision("place", (Part(contact.stream_id, contact.version, tuple(events)),), contact.contact_id)


def servability_gaps(state: RouterState, facts: ContactFacts, plan: RoutingPlan) -> list[str]:
    """Why no agent on the roster could ever take this contact, even after every escalation
    step; [] when at least one could (presence and load aside)."""
    final = requirements_at(plan, math.inf)
    wanted = ", ".join(r.describe() for r in final) or "no requirement"
    if roster_can_serve(state, final, facts.channel):
        return []
    return [f"no agent on the roster serves {facts.channel.value} with {wanted}"]


def roster_can_serve(state: RouterState, requirements: Sequence[Requirement], channel: Channel) -> bool:
    """Whether any agent on the roster could take such a contact (presence and load aside)."""
    # A skill level nobody on the roster has is known from the counts; scanning the agents
    # to find that out would cost a look at every one of them (thousands) per arrival.
    if any(r.kind is RequirementKind.SKILL and state.best_roster_level(r.name) < max(r.min_level, 1)
           for r in requirements):
        return False
    for agent_id in _requirement_set(state, requirements):
        snap = state.agents[agent_id].snapshot
        if snap is not None and _qualifies(snap, requirements, channel):
            return True
    return False


def _qualifies(snap: AgentSnapshot, requirements: Iterable[Requirement], channel: Channel) -> bool:
    """Skills, languages and channel, whatever the agent is doing now."""
    return not qualification_gaps(snap, requirements, channel)


def qualification_gaps(snap: AgentSnapshot, requirements: Iterable[Requirement], channel: Channel) -> tuple[str, ...]:
    """Why this agent could never take such a contact (skills, languages, channel), whatever
    it is doing now; () when it could."""
    return ineligibility(_as_free(snap), tuple(requirements), _CHANNEL_ONLY[channel])


def _as_free(snap: AgentSnapshot) -> AgentSnapshot:
    return AgentSnapshot(snap.profile, Presence.AVAILABLE, {}, 0, snap.idle_since_s, False, 0)


_CHANNEL_ONLY = {ch: ContactFacts(contact_id="-", channel=ch) for ch in Channel}


# -- offers ---------------------------------------------------------------------------------


def next_offers(state: RouterState, now_s: float, limit: int = 1000,
                placing: Collection[Decision] = (), busy_contacts: Collection[str] = (),
                busy_agents: Collection[str] = ()) -> list[Decision]:
    """Offer the best waiting contacts to the best free agents, one offer per contact.

    Contacts are taken by priority (with aging), then by time waited; each gets the
    best eligible free agent by its policy's strategy. An agent freed by anything gets
    the best contact it can serve, because every waiting contact is considered here.

    `placing` are placements decided in this round and not yet stored: their contacts
    compete with the waiting ones as they will be once placed, and an offer to one of
    them comes back merged with its placement (one atomic append from arrival to offer,
    instead of a placement round trip and then an offer round trip).

    `busy_contacts` and `busy_agents` have decisions being stored: the state does not show
    them yet, so they sit this round out (an offer now would only conflict with them).
    """
    decisions: dict[str, list[Decision]] = {}
    taken: Counter[str] = Counter()
    open_channels = {ch for ch, free in state.available.items() if free}
    if not open_channels:
        return []  # nobody is free: nothing to sort (contacts may wait by the thousand)
    placed = {p.contact_id: p for p in placing
              if p.contact_id is not None and p.kind == "place" and _offerable_once_placed(state, p)}
    previews = [state.preview(state.contacts[cid], p.parts[0].events) for cid, p in placed.items()]
    # A contact placed again (its intent changed while it waited) competes as placed now.
    queued = [c for c in state.waiting() if c.contact_id not in placed and c.contact_id not in busy_contacts]
    candidates = [c for c in [*queued, *previews] if c.facts is not None and c.facts.channel in open_channels]
    unserved: list[ContactState] = []
    for contact in sorted(candidates, key=lambda c: (-priority_of(c, now_s), c.queued_at_s, c.contact_id)):
        choice = pick_agent(state, contact, now_s, taken, busy_agents)
        if choice is None:
            if may_be_offered_again(contact):
                unserved.append(contact)
            continue
        _offer_in_round(state, contact, choice, now_s, placed, taken, decisions)
        if sum(taken.values()) >= limit:
            break
    else:
        # Why a second pass, after everyone else: an agent whose offer for a contact expired
        # (or was withdrawn) is not offered it again while someone else could take it, but
        # must not sit idle while it waits either ("no idle agent while an eligible contact
        # waits"). Last, so that contacts the agent has not had yet go to it first.
        for contact in unserved:
            if sum(taken.values()) >= limit:
                break
            choice = pick_agent(state, contact, now_s, taken, busy_agents, second_chance=True)
            if choice is not None:
                _offer_in_round(state, contact, choice, now_s, placed, taken, decisions)
    # Offers to one agent in one round share the agent stream's version: they go in one
    # atomic append, so they land together or not at all.
    return [merge("offer", group) if len(group) > 1 else group[0] for group in decisions.values()]


def _offer_in_round(state: RouterState, contact: ContactState, choice: tuple[AgentSnapshot, dict[str, Any]],
                    now_s: float, placed: Mapping[str, Decision], taken: Counter[str],
                    decisions: dict[str, list[Decision]]) -> None:
    snap, considered = choice
    taken[snap.agent_id] += 1
    made = offer(state, contact, snap, now_s, considered)
    if contact.contact_id in placed:  # the placement's events come first on its stream
        made = merge("offer", (placed[contact.contact_id], made))
    decisions.setdefault(snap.agent_id, []).append(made)


def _offerable_once_placed(state: RouterState, placement: Decision) -> bool:
    """A placement of a contact not yet offered, that only queues it (a contact nobody on
    the roster can serve is not worth looking at twice)."""
    contact = state.contacts.get(placement.contact_id or "")
    return (contact is not None and contact.offer is None and len(placement.parts) == 1
            and all(type_ in _QUEUEING for type_, _ in placement.parts[0].events))


_QUEUEING = frozenset({ev.CONTACT_QUEUED, ev.SLA_TIMER_STARTED})


def contacts_in(decision: Decision) -> set[str]:
    """The contacts whose streams a decision writes or checks."""
    return _keys_in(decision, "contact-")


def agents_in(decision: Decision) -> set[str]:
    """The agents whose streams a decision writes or checks."""
    return _keys_in(decision, "agent-")


def _keys_in(decision: Decision, prefix: str) -> set[str]:
    return {part.stream_id.split(":", 1)[1] for part in decision.parts if part.stream_id.startswith(prefix)}


def offered(decision: Decision) -> dict[str, str]:
    """contact id -> agent id for every offer a decision makes."""
    return {data["contact_id"]: data["agent_id"] for part in decision.parts
            for type_, data in part.events if type_ == ev.OFFER_MADE}


def pick_agent(
    state: RouterState, contact: ContactState, now_s: float, taken: Counter[str], busy: Collection[str] = (),
    *, second_chance: bool = False,
) -> tuple[AgentSnapshot, dict[str, Any]] | None:
    """The agent to offer `contact` to, and why. `second_chance`: an agent whose offer for it
    expired or was withdrawn may have it again (see `next_offers`)."""
    assert contact.plan is not None and contact.facts is not None
    plan = contact.plan
    requirements = requirements_of(contact)
    skipped: Counter[str] = Counter()
    if not second_chance:
        first = _first_choice(state, contact, requirements, taken, skipped, busy)
        if first is not None:
            return first, _considered(plan.strategy, skipped, first, "the customer's own agent first")
    best = _best_free(state, contact, requirements, taken, skipped, busy, second_chance=second_chance)
    if best is None:
        return None
    why = f"best by {plan.strategy.value}" + (", offered again: nobody else was free for it" if second_chance else "")
    return best, _considered(plan.strategy, skipped, best, why)


_SECOND_CHANCE = frozenset({"expired", "revoked"})  # not "rejected", nor "passed" (a named agent's fallback)


def may_be_offered_again(contact: ContactState) -> bool:
    """Some agent's offer for it expired or was withdrawn (not rejected)."""
    return any(how in _SECOND_CHANCE for how in contact.tried.values())


def _best_free(state: RouterState, contact: ContactState, requirements: tuple[Requirement, ...],
               taken: Counter[str], skipped: Counter[str], busy: Collection[str], *,
               second_chance: bool) -> AgentSnapshot | None:
    """The best eligible free agent by the contact's strategy (None: nobody)."""
    assert contact.plan is not None and contact.facts is not None
    strategy, facts = contact.plan.strategy, contact.facts
    ordered = strategy in (Strategy.LONGEST_IDLE, Strategy.DEDICATED_FIRST, Strategy.LAST_AGENT_FIRST)
    bound = _unbeatable(state, strategy, requirements, facts.channel)
    driving = _driving_ids(state, requirements, facts.channel, ordered_available=ordered or bound is not None)
    in_idle_order = driving is state.available[facts.channel]
    best: AgentSnapshot | None = None
    best_key: tuple[Any, ...] = ()
    settled = False
    key = sort_key(strategy, requirements, facts)
    for agent_id in driving:
        if settled and best is not None and state.agents[agent_id].idle_since_s > best.idle_since_s:
            break  # idle order: everyone from here on has waited less, so cannot beat `best`
        snap = _eligible(state, contact, agent_id, requirements, taken, skipped, busy, second_chance)
        if snap is None:
            continue
        if ordered and in_idle_order:
            best = snap  # the index is in idle order: the first eligible is the longest idle
            break
        snap_key = key(snap)
        if best is None or snap_key < best_key:
            best, best_key = snap, snap_key
        settled = in_idle_order and bound is not None and best_key[:len(bound)] == bound
    return best


def _unbeatable(state: RouterState, strategy: Strategy, requirements: tuple[Requirement, ...],
                channel: Channel) -> tuple[float, ...] | None:
    """The best sort-key prefix any free agent could have (None: no such bound known).

    Eligible agents are all in the channel's availability index, so no skill level can
    be above the best one counted there. Walking that index in idle order, the first
    eligible agent that reaches the bound wins (bar an exact tie on idle time): the
    walk stops there instead of ranking every free agent.
    """
    if strategy is Strategy.MOST_SKILLED:
        levels = [state.best_free_level(channel, r.name) for r in requirements if r.kind is RequirementKind.SKILL]
        return (-float(sum(levels)), -float(max(levels, default=0)))
    if strategy is Strategy.LEAST_BUSY:
        return (0.0,)  # nothing beats an agent with no load at all
    return None


def _first_choice(state: RouterState, contact: ContactState, requirements: tuple[Requirement, ...],
                  taken: Counter[str], skipped: Counter[str], busy: Collection[str]) -> AgentSnapshot | None:
    assert contact.plan is not None and contact.facts is not None
    strategy, facts = contact.plan.strategy, contact.facts
    wanted = facts.dedicated_agent if strategy is Strategy.DEDICATED_FIRST else (
        facts.last_agent if strategy is Strategy.LAST_AGENT_FIRST else None)
    if wanted is None or wanted not in state.agents:
        return None
    return _eligible(state, contact, wanted, requirements, taken, skipped, busy)


def _eligible(state: RouterState, contact: ContactState, agent_id: str, requirements: tuple[Requirement, ...],
              taken: Counter[str], skipped: Counter[str], busy: Collection[str] = (),
              second_chance: bool = False) -> AgentSnapshot | None:
    assert contact.facts is not None
    agent = state.agents.get(agent_id)
    snap = agent.snapshot if agent is not None else None
    if snap is None:
        return None
    if agent_id in busy:
        skipped["a decision for this agent is being stored"] += 1
        return None
    if agent_id in contact.tried and not (second_chance and contact.tried[agent_id] in _SECOND_CHANCE):
        skipped["already offered this contact"] += 1
        return None
    if taken[agent_id] and not _room_after(snap, contact.facts.channel, taken[agent_id]):
        skipped["taken by a higher-priority contact in this round"] += 1
        return None
    reasons = ineligibility(snap, requirements, contact.facts)
    if reasons:
        skipped[reasons[0]] += 1
        return None
    return snap


def _room_after(snap: AgentSnapshot, channel: Channel, extra: int) -> bool:
    used = snap.load.get(channel, 0) + snap.pending_offers + extra
    return used < snap.profile.channels.get(channel, 0) and snap.total_load + extra < snap.profile.total_capacity


AgentIds = Collection[str]  # an index: a set of agent ids, or the idle-ordered dict of free ones


def _requirement_sets(state: RouterState, requirements: Iterable[Requirement]) -> list[AgentIds]:
    options: list[AgentIds] = []
    for req in requirements:
        if req.kind is RequirementKind.SKILL:
            options.append(state.skill_index.get(req.name, set()))
        elif req.kind is RequirementKind.LANGUAGE:
            options.append(state.language_index.get(req.name, set()))
        elif req.kind is RequirementKind.AGENT:
            options.append({req.name} if req.name in state.agents else set())
    return options


def _requirement_set(state: RouterState, requirements: Iterable[Requirement]) -> AgentIds:
    """The smallest index set holding every agent that meets the requirements (all agents if none)."""
    return min(_requirement_sets(state, requirements), key=len, default=state.agents.keys())


def _driving_ids(state: RouterState, requirements: Iterable[Requirement], channel: Channel,
                 *, ordered_available: bool) -> AgentIds:
    """The smallest set that must contain every eligible agent: free agents on the channel,
    or the agents having one required skill, language or identity."""
    options = _requirement_sets(state, requirements)
    available = state.available[channel]
    if ordered_available:
        # Walking free agents in idle order stops at the first eligible one; only a much
        # smaller requirement set (e.g. the few who sign) is worth scanning whole instead.
        smallest = min(options, key=len, default=None)
        return smallest if smallest is not None and len(smallest) * 8 < len(available) else available
    return min([available, *options], key=len)


def _considered(strategy: Strategy, skipped: Counter[str], chosen: AgentSnapshot, why: str) -> dict[str, Any]:
    return {"strategy": strategy.value, "chosen": chosen.agent_id, "why": why,
            "not_chosen": dict(skipped.most_common(8)), "idle_since_s": chosen.idle_since_s}


def offer(state: RouterState, contact: ContactState, snap: AgentSnapshot, now_s: float,
          considered: dict[str, Any]) -> Decision:
    assert contact.plan is not None and contact.facts is not None
    agent = state.agents[snap.agent_id]
    offer_id = derived_id("offer", contact.contact_id, contact.version)
    expires_at_s = now_s + contact.plan.offer_timeout_s
    channel = contact.facts.channel.value
    made = {
        "offer_id": offer_id, "contact_id": contact.contact_id, "agent_id": snap.agent_id, "channel": channel,
        "offered_at_s": now_s, "expires_at_s": expires_at_s, "queue_id": contact.queue_id,
        "priority": round(priority_of(contact, now_s), 3),
        "reasons": [f"rule {contact.plan.rule_id} (policy v{contact.plan.policy_version})",
                    f"requirements: {', '.join(r.describe() for r in requirements_of(contact)) or 'none'}",
                    considered["why"]],
        "considered": considered,
    }
    reserved = {"agent_id": snap.agent_id, "offer_id": offer_id, "contact_id": contact.contact_id,
                "channel": channel, "at_s": now_s}
    return Decision("offer", (Part(contact.stream_id, contact.version, ((ev.OFFER_MADE, made),)),
                              Part(agent.stream_id, agent.version, ((ev.AGENT_RESERVED, reserved),))),
                    contact.contact_id, snap.agent_id)

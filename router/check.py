"""`contact-router check`: read the whole log and verify the router's invariants.

The checker is a pure fold over events (feed them in log order, then ask for the
report at an instant); the CLI only reads the log and prints. Invariants:
- no contact assigned to two agents at once (by the contact's stream, and by the agents'
  streams: engaged until freed), nor to another agent than its accepted offer's;
- no agent above its capacity (per channel and in total) when the router reserved or
  engaged it;
- every offer resolved (accepted, rejected, expired or revoked) once, unless still running;
- every contact ended, abandoned, or waiting with a plan (placed by the router) and its timers
  due: a wait past its SLA is marked breached, a follow-up deadline past due is marked, an
  escalation step past due is applied (all
  judged against the log's newest event, so a stopped router is not blamed for the time since);
- no hard requirement ever relaxed: every escalation step keeps every hard requirement
  of the plan, and every assigned agent meets them (a named agent's transfer: that agent).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from eventstore import RecordedEvent

from . import events as ev

OFFER_GRACE_S = 60.0  # an offer past its expiry by more than this should have been resolved
PLACE_GRACE_S = 60.0  # a contact that arrived longer ago than this should have been placed
TIMER_GRACE_S = 60.0  # a timer due longer ago than this should have fired


Key = tuple[str, str]  # (routing domain, agent or contact id)


@dataclass
class _Agent:
    channels: dict[str, int] = field(default_factory=dict)
    total: int = 1
    skills: dict[str, int] = field(default_factory=dict)
    languages: set[str] = field(default_factory=set)
    reserved: dict[str, str] = field(default_factory=dict)  # offer id -> channel
    engaged: dict[str, str] = field(default_factory=dict)  # contact id -> channel


@dataclass
class _Contact:
    arrived_s: float | None = None
    placed: bool = False
    finished: bool = False
    assignee: str | None = None
    hard: list[dict[str, Any]] = field(default_factory=list)
    channel: str | None = None
    answer_within_s: float | None = None
    sla_due_s: float | None = None  # the current wait's SLA breach moment; None once answered or marked
    breached: bool = False  # the current wait's breach is marked
    queued_at_s: float | None = None
    deadlines: dict[str, float] = field(default_factory=dict)  # not yet marked due
    deadlines_done: set[str] = field(default_factory=set)  # marked: a re-placement does not make them due again
    accepted: dict[str, str] = field(default_factory=dict)  # offer id -> the agent it was made to, until assigned
    steps_after_s: list[float] = field(default_factory=list)  # the plan's escalation steps, from the queueing
    steps_done: int = 0
    moved: bool = False  # requeued (a transfer, an overflow): off its plan's timeline


@dataclass
class Checker:
    agents: dict[Key, _Agent] = field(default_factory=dict)
    contacts: dict[Key, _Contact] = field(default_factory=dict)
    # Open offers: (domain, offer id) -> (contact, agent id, expires); an id is its domain's.
    offers: dict[Key, tuple[Key, str, float]] = field(default_factory=dict)
    holders: dict[Key, str] = field(default_factory=dict)  # contact -> the agent that has it engaged
    violations: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    newest_s: float = 0.0  # the newest event's time: the router was running then

    def feed(self, event: RecordedEvent) -> None:
        self.counts["events"] += 1
        self.newest_s = max(self.newest_s, event.recorded_at.timestamp())
        # Agents and contacts are known by (routing domain, id): the log holds every domain,
        # and an agent id chosen by one domain's admin may well be used in another.
        head, _, key = event.stream_id.partition(":")
        category, _, domain = head.partition("-")
        if category == "agent":
            self._agent((domain, key), event)
        elif category == "contact":
            self._contact((domain, key), event)

    # -- agents ---------------------------------------------------------------------------

    def _agent(self, agent_id: Key, event: RecordedEvent) -> None:
        agent = self.agents.setdefault(agent_id, _Agent())
        data = event.data
        if event.type in (ev.AGENT_REGISTERED, ev.AGENT_UPDATED):
            # A null stored before the API refused it keeps the old value, as the router does.
            agent.channels = dict(_given(data, "channels", agent.channels))
            agent.total = int(_given(data, "total_capacity", agent.total))
            agent.skills = dict(_given(data, "skills", agent.skills))
            agent.languages = set(_given(data, "languages", agent.languages))
        elif event.type == ev.AGENT_RESERVED:
            agent.reserved[data["offer_id"]] = data["channel"]
            self._capacity(agent_id, agent, data["channel"], event)
        elif event.type == ev.AGENT_RELEASED:
            agent.reserved.pop(data["offer_id"], None)
        elif event.type == ev.AGENT_ENGAGED:
            agent.reserved.pop(data.get("offer_id", ""), None)
            agent.engaged[data["contact_id"]] = data["channel"]
            self._capacity(agent_id, agent, data["channel"], event)
            self._engaged(agent_id, (agent_id[0], data["contact_id"]), event)
        elif event.type == ev.AGENT_FREED:
            agent.engaged.pop(data["contact_id"], None)
            if self.holders.get((agent_id[0], data["contact_id"])) == agent_id[1]:
                del self.holders[(agent_id[0], data["contact_id"])]

    def _engaged(self, agent_id: Key, contact_id: Key, event: RecordedEvent) -> None:
        """Who holds a contact is on the agents' streams (engaged until freed): a contact's own
        events, even a wrong move, do not free the agent who has it."""
        holder = self.holders.get(contact_id)
        if holder is not None and holder != agent_id[1]:
            self.violations.append(f"contact {_named(contact_id)} engaged by {agent_id[1]} while {holder} still "
                                   f"had it (position {event.position})")
        self.holders[contact_id] = agent_id[1]

    def _capacity(self, agent_id: Key, agent: _Agent, channel: str, event: RecordedEvent) -> None:
        used = list(agent.reserved.values()) + list(agent.engaged.values())
        on_channel = used.count(channel)
        if on_channel > agent.channels.get(channel, 0) or len(used) > agent.total:
            self.violations.append(
                f"agent {_named(agent_id)} above capacity at position {event.position}: {on_channel} on {channel} "
                f"(capacity {agent.channels.get(channel, 0)}), {len(used)} in total (capacity {agent.total})")

    # -- contacts -------------------------------------------------------------------------

    def _contact(self, contact_id: Key, event: RecordedEvent) -> None:
        contact = self.contacts.setdefault(contact_id, _Contact())
        data = event.data
        kind = event.type
        if kind == ev.CONTACT_ARRIVED:
            contact.arrived_s = event.recorded_at.timestamp()
            contact.channel = data.get("channel")
        elif kind in (ev.CONTACT_QUEUED, ev.CONTACT_UNROUTABLE):
            contact.placed = True
            if kind == ev.CONTACT_QUEUED:
                contact.hard = [r for r in data["plan"]["requirements"] if r.get("hard")]
                contact.answer_within_s = float(data["plan"]["answer_within_s"])
                queued_at_s = float(data["queued_at_s"])
                # Placed again in the same wait (its intent changed): a breach already marked
                # stays marked, as the router keeps it; a new wait has its own clock.
                if not (contact.breached and queued_at_s == contact.queued_at_s):
                    contact.breached = False
                    contact.sla_due_s = queued_at_s + contact.answer_within_s
                contact.queued_at_s = queued_at_s
                # Placed again: the plan's timeline from its first step (the router's too).
                contact.steps_after_s = [float(step["after_s"]) for step in data["plan"].get("escalations", ())]
                contact.steps_done, contact.moved = 0, False
                # A deadline already marked stays marked when placed again (the router keeps it).
                contact.deadlines = {k: float(v) for k, v in (data["plan"].get("deadlines") or {}).items()
                                     if k not in contact.deadlines_done}
        elif kind == ev.SLA_BREACHED:
            contact.sla_due_s = None
            contact.breached = True
        elif kind == ev.FOLLOW_UP_DUE:
            contact.deadlines.pop(data["name"], None)
            contact.deadlines_done.add(data["name"])
        elif kind == ev.ESCALATION_APPLIED:
            contact.steps_done = max(contact.steps_done, int(data.get("step", -1)) + 1)
            self._kept_hard(contact_id, contact, data.get("requirements", []), event)
            if data.get("answer_within_s") is not None:  # moved to a queue with another target: same wait
                target = float(data["answer_within_s"])
                if contact.sla_due_s is not None and contact.answer_within_s is not None:
                    contact.sla_due_s += target - contact.answer_within_s
                contact.answer_within_s = target
        elif kind == ev.OFFER_MADE:
            self.counts["offers"] += 1
            self.offers[(contact_id[0], data["offer_id"])] = (contact_id, data["agent_id"], float(data["expires_at_s"]))
        elif kind in (ev.OFFER_ACCEPTED, ev.OFFER_REJECTED, ev.OFFER_EXPIRED, ev.OFFER_REVOKED):
            # An accept too: accepting an offer already expired or revoked resolves it twice.
            open_offer = self.offers.pop((contact_id[0], data["offer_id"]), None)
            if open_offer is None:
                self.violations.append(f"offer {data['offer_id']} of contact {_named(contact_id)} resolved twice or "
                                       f"never made ({kind}, position {event.position})")
            elif kind == ev.OFFER_ACCEPTED:
                contact.accepted[data["offer_id"]] = open_offer[1]
        elif kind == ev.CONTACT_ASSIGNED:
            self._assigned(contact_id, contact, data, event)
        elif kind in (ev.CONTACT_TRANSFERRED, ev.CONTACT_REQUEUED):
            contact.assignee = None
            if kind == ev.CONTACT_REQUEUED:
                contact.moved = True
                # A move (a transfer, an overflow, a named agent's fallback) keeps every hard
                # requirement but the named agent.
                contact.hard = [r for r in contact.hard if r["kind"] != "agent"]
                self._kept_hard(contact_id, contact, data.get("requirements", []), event)
                # A named agent (a transfer to an agent) is a hard requirement until its fallback.
                contact.hard = [r for r in data.get("requirements", []) if r.get("hard")]
                if data.get("answer_within_s") is not None:  # a move to a queue with its own target
                    target = float(data["answer_within_s"])
                    if data.get("same_wait") and contact.sla_due_s is not None and contact.answer_within_s is not None:
                        contact.sla_due_s += target - contact.answer_within_s  # an overflow: the same wait
                    contact.answer_within_s = target
                if not data.get("same_wait"):  # a named agent's fallback goes on with the same wait
                    self._waits_again(contact, data)
        elif kind == ev.CALLBACK_DUE:
            if contact.finished or contact.assignee is None:
                self._waits_again(contact, data)
            contact.finished = False  # the callback re-opens it until an agent completes it
        elif kind in (ev.CONTACT_COMPLETED, ev.CONTACT_ENDED, ev.CUSTOMER_ABANDONED):
            contact.finished = True
            contact.assignee = None
            contact.sla_due_s = None
            self.counts[kind] += 1

    @staticmethod
    def _waits_again(contact: _Contact, data: dict[str, Any]) -> None:
        contact.breached = False
        if contact.answer_within_s is not None:  # a new wait, with its own SLA clock
            contact.sla_due_s = float(data["at_s"]) + contact.answer_within_s

    def _assigned(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        self.counts["assigned"] += 1
        contact.sla_due_s = None
        agent_id = data["agent_id"]  # an agent of the contact's own domain
        name = _named(contact_id)
        if contact.finished:
            self.violations.append(f"contact {name} assigned to {agent_id} after it ended (position "
                                   f"{event.position})")
        if contact.assignee is not None and contact.assignee != agent_id:
            self.violations.append(f"contact {name} assigned to {agent_id} while {contact.assignee} "
                                   f"still had it (position {event.position})")
        offered_to = contact.accepted.pop(data.get("offer_id", ""), None)
        if offered_to != agent_id:
            whose = f"made to {offered_to}" if offered_to is not None else "not accepted"
            self.violations.append(f"contact {name} assigned to {agent_id} on offer {data.get('offer_id')}, "
                                   f"{whose} (position {event.position})")
        contact.assignee = agent_id
        agent = self.agents.get((contact_id[0], agent_id), _Agent())
        for req in contact.hard:
            if not _meets(agent_id, agent, req):
                self.violations.append(f"contact {name} assigned to {agent_id}, who does not meet the hard "
                                       f"requirement {req['kind']} {req['name']} (position {event.position})")

    def _kept_hard(self, contact_id: Key, contact: _Contact, now_required: list[dict[str, Any]],
                   event: RecordedEvent) -> None:
        for req in contact.hard:
            if not any(r["kind"] == req["kind"] and r["name"] == req["name"]
                       and int(r.get("min_level", 0)) >= int(req.get("min_level", 0)) for r in now_required):
                self.violations.append(f"{event.type} relaxed the hard requirement {req['kind']} {req['name']} "
                                       f"of contact {_named(contact_id)} (position {event.position})")

    # -- the verdict ----------------------------------------------------------------------

    def report(self, now_s: float) -> dict[str, Any]:
        violations = list(self.violations)
        # Timers (an offer's expiry, a placement, an SLA, a deadline) are judged against the
        # log's own clock: while nothing was written (a router stopped for the night), nothing
        # could have fired or been placed, and that is not a violation.
        log_now_s = min(now_s, self.newest_s)
        for (_, offer_id), (contact_id, _, expires_s) in self.offers.items():
            if expires_s + OFFER_GRACE_S < log_now_s:
                violations.append(f"offer {offer_id} for contact {_named(contact_id)} expired and was never resolved")
        waiting = 0
        timers_by_s = log_now_s - TIMER_GRACE_S
        for contact_id, contact in self.contacts.items():
            for name, due_s in contact.deadlines.items():
                if due_s < timers_by_s:
                    violations.append(f"contact {_named(contact_id)}: the {name} deadline was due at {due_s:.0f} "
                                      "and never marked")
            if contact.arrived_s is None or contact.finished:
                continue
            if contact.sla_due_s is not None and contact.sla_due_s < timers_by_s:
                violations.append(f"contact {_named(contact_id)} waited past its SLA (due at "
                                  f"{contact.sla_due_s:.0f}) and no SlaBreached was recorded")
            step = contact.steps_done
            if (contact.placed and contact.assignee is None and not contact.moved and contact.queued_at_s is not None
                    and step < len(contact.steps_after_s)
                    and contact.queued_at_s + contact.steps_after_s[step] < timers_by_s):
                violations.append(f"contact {_named(contact_id)}: escalation step {step} was due at "
                                  f"{contact.queued_at_s + contact.steps_after_s[step]:.0f} and never applied")
            if not contact.placed and contact.arrived_s + PLACE_GRACE_S < log_now_s:
                violations.append(f"contact {_named(contact_id)} arrived and was never placed in a queue")
            waiting += 1
        return {
            "ok": not violations,
            "events": self.counts["events"], "contacts": len(self.contacts), "agents": len(self.agents),
            "offers": self.counts["offers"], "assigned": self.counts["assigned"],
            "completed": self.counts[ev.CONTACT_COMPLETED], "abandoned": self.counts[ev.CUSTOMER_ABANDONED],
            "open_offers": len(self.offers), "not_finished": waiting,
            "violations": violations[:200], "violation_count": len(violations),
        }


def _named(key: Key) -> str:
    """An agent's or contact's id as a report names it: the domain only when not the default."""
    domain, entity_id = key
    return entity_id if domain == "default" else f"{entity_id} (domain {domain})"


def _meets(agent_id: str, agent: _Agent, req: dict[str, Any]) -> bool:
    kind, name = req["kind"], req["name"]
    if kind == "skill":
        return agent.skills.get(name, 0) >= int(req.get("min_level", 0))
    if kind == "language":
        return name in agent.languages
    if kind == "channel":
        return agent.channels.get(name, 0) > 0
    if kind == "agent":  # hard: a transfer to a named agent, or a plan's dedicated agent
        return bool(agent_id == name)
    return True


async def check_log(store: Any, now_s: float, progress: Any = None) -> dict[str, Any]:
    """Feed the whole log (in log order, gap-safe) to a Checker and return its report."""
    from eventstore import LOG_START

    checker, cursor = Checker(), LOG_START
    while batch := await store.read_log(cursor, 5000):
        for event in batch:
            checker.feed(event)
        cursor = batch[-1].cursor
        if progress is not None:
            progress(checker.counts["events"])
    return checker.report(now_s)


def _given(data: Any, name: str, old: Any) -> Any:
    value = data.get(name)
    return old if value is None else value

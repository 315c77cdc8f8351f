"""`contact-router check`: read the whole log and verify the router's invariants.

The checker is a pure fold over events (feed them in log order, then ask for the
report at an instant); the CLI only reads the log and prints. Invariants:
- no contact assigned to two agents at once (by the contact's stream, and by the agents'
  streams: engaged until freed), nor to another agent than its accepted offer's;
- no agent above its capacity (per channel and in total) when the router reserved or
  engaged it;
- every offer resolved (accepted, rejected, expired or revoked) once, unless still running;
  no contact offered, placed or moved after it ended (until a promised callback re-opens it);
- every contact ended, abandoned, or waiting with a plan (placed by the router) and its timers
  due: a wait past its SLA is marked breached (not before, and against the target of the
  queue its plan or its last move put it in), a follow-up deadline past due is marked, an
  escalation step past due is applied, and so is a transferred contact's overflow past its
  queue's max wait (all judged against the log's newest event, so a stopped router is not
  blamed for the time since);
- every promised callback (an after-hours plan's, an `offer_callback` step's) slotted in the
  customer's windows and the business hours the policy stated, not in the past, carried out
  (CallbackDue) at or after its slot and not outside those hours, or still due at the end of
  the log, unless an agent answered the contact meanwhile; a hang-up after the promise is no
  abandon;
- no hard requirement ever relaxed: every escalation step keeps every hard requirement of the
  plan, every move keeps them too (only a transfer or a named agent's fallback drops a named
  agent), and every assigned agent meets them (a named agent's transfer: that agent).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from eventstore import RecordedEvent
from policies.errors import PolicyError
from policies.hours import Calendar
from policies.loader import document_from_data

from . import events as ev
from .policy_service import POLICY_PUBLISHED, POLICY_ROLLED_BACK

OFFER_GRACE_S = 60.0  # an offer past its expiry by more than this should have been resolved
PLACE_GRACE_S = 60.0  # a contact that arrived longer ago than this should have been placed
TIMER_GRACE_S = 60.0  # a timer due longer ago than this should have fired
EPSILON_S = 1e-6  # the router's own arithmetic on the same times: equal up to rounding


Key = tuple[str, str]  # (routing domain, agent or contact id)
Window = tuple[int, int]  # a customer's callback window, minutes after local midnight (may wrap)


@dataclass(frozen=True)
class _Policy:
    """What the checker needs of one policy version: its zone, business hours and queues."""

    version: int
    zone: ZoneInfo
    calendar: Calendar | None  # None: no business hours, a callback may be at any hour
    queues: frozenset[str]


@dataclass(frozen=True)
class _Callback:
    """A callback promised and not yet carried out."""

    at_s: float  # its slot
    position: int  # where it was promised
    within_hours: bool  # in business hours (else only the customer's windows)
    policies: tuple[_Policy, ...]  # the versions whose hours it may have been slotted by (none known: unchecked)


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
    queued: bool = False  # placed with a plan (ContactQueued): the router's timers run on it
    finished: bool = False
    assignee: str | None = None
    answered: bool = False  # an agent took it since its last move (the router's agent_id): no callback then
    offer_id: str | None = None  # its offer still open
    hard: list[dict[str, Any]] = field(default_factory=list)
    channel: str | None = None
    windows: tuple[Window, ...] = ()
    answer_within_s: float | None = None
    sla_due_s: float | None = None  # the current wait's SLA breach moment; None once answered or marked
    breached: bool = False  # the current wait's breach is marked
    queued_at_s: float | None = None
    resumed_at_s: float = 0.0  # placed, placed again or re-opened by a callback: its timers run from here
    deadlines: dict[str, float] = field(default_factory=dict)  # not yet marked due
    deadlines_done: set[str] = field(default_factory=set)  # marked: a re-placement does not make them due again
    accepted: dict[str, str] = field(default_factory=dict)  # offer id -> the agent it was made to, until assigned
    steps_after_s: list[float] = field(default_factory=list)  # the plan's escalation steps, from the queueing
    steps_done: int = 0
    plan_version: int | None = None
    queue_id: str | None = None
    moved: bool = False  # requeued (a transfer, an overflow): off its plan's timeline
    moved_at_s: float | None = None
    max_wait_s: float | None = None  # the queue it was moved to: its max wait from the move, and where to then
    overflow_to: str | None = None
    transferring: bool = False  # ContactTransferred: the ContactRequeued that follows is a transfer
    callback_at_s: float | None = None  # the newest slot promised (the router's own field, kept once due)
    callback: _Callback | None = None  # promised and not carried out yet
    callback_within_hours: bool = False  # the offer_callback step just applied: its slot in business hours


@dataclass
class Checker:
    agents: dict[Key, _Agent] = field(default_factory=dict)
    contacts: dict[Key, _Contact] = field(default_factory=dict)
    policies: dict[str, dict[int, _Policy]] = field(default_factory=dict)  # domain -> version -> policy
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
        elif category == "policy":
            self._policy(domain, event)

    # -- policies -------------------------------------------------------------------------

    def _policy(self, domain: str, event: RecordedEvent) -> None:
        """Each version's zone, business hours and queues: what callback slots and overflows
        are judged by. A version that does not parse is skipped, as the router skips it."""
        if event.type not in (POLICY_PUBLISHED, POLICY_ROLLED_BACK):
            return
        try:
            doc = document_from_data(event.data.get("document"))
            zone = doc.zone()
        except (PolicyError, ValueError, LookupError):
            return
        calendar = doc.business_hours.compile() if doc.business_hours is not None else None
        self.policies.setdefault(domain, {})[event.version] = _Policy(
            event.version, zone, calendar, frozenset(q.id for q in doc.queues))

    def _in_every_version(self, domain: str, queue_id: str) -> bool:
        """Whether every version of the domain's policy in the log has that queue (the router's
        overflow does nothing while the active one has not: then it cannot be judged)."""
        versions = self.policies.get(domain, {})
        return bool(versions) and all(queue_id in p.queues for p in versions.values())

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
        if contact.finished and kind in _NOT_AFTER_AN_END:
            self._after_end(contact_id, contact, event)
        if kind == ev.CONTACT_ARRIVED:
            contact.arrived_s = event.recorded_at.timestamp()
            contact.channel = data.get("channel")
            windows = data.get("callback_windows") or ()
            contact.windows = tuple((int(w["start_min"]), int(w["end_min"])) for w in windows)
        elif kind == ev.CONTACT_QUEUED:
            self._queued(contact_id, contact, data, event)
        elif kind == ev.CONTACT_UNROUTABLE:
            contact.placed = True
        elif kind == ev.SLA_BREACHED:
            self._sla_breached(contact_id, contact, data, event)
        elif kind == ev.FOLLOW_UP_DUE:
            contact.deadlines.pop(data["name"], None)
            contact.deadlines_done.add(data["name"])
        elif kind == ev.ESCALATION_APPLIED:
            self._escalated(contact_id, contact, data, event)
        elif kind == ev.OFFER_MADE:
            self.counts["offers"] += 1
            self.offers[(contact_id[0], data["offer_id"])] = (contact_id, data["agent_id"], float(data["expires_at_s"]))
            contact.offer_id = data["offer_id"]
        elif kind in (ev.OFFER_ACCEPTED, ev.OFFER_REJECTED, ev.OFFER_EXPIRED, ev.OFFER_REVOKED):
            self._offer_resolved(contact_id, contact, data, event)
        elif kind == ev.CONTACT_ASSIGNED:
            self._assigned(contact_id, contact, data, event)
        elif kind == ev.CONTACT_TRANSFERRED:
            contact.assignee = None
            contact.transferring = True
        elif kind == ev.CONTACT_REQUEUED:
            self._requeued(contact_id, contact, data, event)
        elif kind == ev.CALLBACK_SCHEDULED:
            self._callback_scheduled(contact_id, contact, data, event)
        elif kind == ev.CALLBACK_DUE:
            self._callback_due(contact_id, contact, data, event)
        elif kind in (ev.CONTACT_COMPLETED, ev.CONTACT_ENDED, ev.CUSTOMER_ABANDONED):
            self._finished(contact, kind)

    def _after_end(self, contact_id: Key, contact: _Contact, event: RecordedEvent) -> None:
        """Offered, placed or moved after it ended: the router only ever re-opens a contact
        whose promised callback fell due (the customer who hung up is called back then)."""
        what = {ev.OFFER_MADE: f"offered to {event.data.get('agent_id')}", ev.CONTACT_QUEUED: "placed in a queue",
                ev.CONTACT_REQUEUED: f"moved to queue {event.data.get('queue_id')}"}[event.type]
        when = f"after it ended (position {event.position})"
        if contact.callback is not None:
            when += f", before its callback fell due (promised for {_when(contact.callback)})"
        self.violations.append(f"contact {_named(contact_id)} {what} {when}")

    def _queued(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        plan = data["plan"]
        contact.placed = contact.queued = True
        contact.hard = [r for r in plan["requirements"] if r.get("hard")]
        contact.answer_within_s = float(plan["answer_within_s"])
        queued_at_s = float(data["queued_at_s"])
        # Placed again in the same wait (its intent changed): a breach already marked
        # stays marked, as the router keeps it; a new wait has its own clock.
        if not (contact.breached and queued_at_s == contact.queued_at_s):
            contact.breached = False
            contact.sla_due_s = queued_at_s + contact.answer_within_s
        contact.queued_at_s = queued_at_s
        contact.resumed_at_s = float(data.get("at_s", queued_at_s))
        # Placed again: the plan's timeline from its first step (the router's too), in its queue.
        contact.steps_after_s = [float(step["after_s"]) for step in plan.get("escalations", ())]
        contact.steps_done, contact.moved = 0, False
        contact.max_wait_s, contact.overflow_to = None, None
        contact.queue_id = data.get("queue_id", plan.get("queue_id"))
        version = plan.get("policy_version", data.get("policy_version"))
        contact.plan_version = None if version is None else int(version)
        # A deadline already marked stays marked when placed again (the router keeps it).
        contact.deadlines = {k: float(v) for k, v in (plan.get("deadlines") or {}).items()
                             if k not in contact.deadlines_done}
        slot = plan.get("callback_at_s")
        if slot is not None and contact.callback_at_s is None:  # the first promise stands, as the router keeps it
            known = self.policies.get(contact_id[0], {}).get(contact.plan_version or 0)
            self._promise(contact_id, contact, float(slot), data.get("at_s"), True,
                          (known,) if known is not None else (), event)

    def _sla_breached(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        """Marked when due, by the target of the queue the contact waits in: its plan's, or the
        one its last move recorded (`answer_within_s` on ContactRequeued, EscalationApplied)."""
        name, at_s, stated = _named(contact_id), data.get("at_s"), data.get("answer_within_s")
        if contact.sla_due_s is not None and at_s is not None and float(at_s) < contact.sla_due_s - EPSILON_S:
            self.violations.append(f"contact {name}: SlaBreached at {float(at_s):.0f} (position {event.position}) "
                                   f"before the wait's SLA target passed ({contact.sla_due_s:.0f})")
        if (stated is not None and contact.answer_within_s is not None
                and abs(float(stated) - contact.answer_within_s) > EPSILON_S):
            self.violations.append(f"contact {name}: SlaBreached (position {event.position}) states a target of "
                                   f"{float(stated):g} s, but the queue it waits in answers within "
                                   f"{contact.answer_within_s:g} s")
        contact.sla_due_s = None
        contact.breached = True

    def _escalated(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        contact.steps_done = max(contact.steps_done, int(data.get("step", -1)) + 1)
        self._kept_hard(contact_id, contact, data.get("requirements", []), event)
        contact.queue_id = data.get("queue_id", contact.queue_id)
        if data.get("answer_within_s") is not None:  # moved to a queue with another target: same wait
            self._new_target(contact, float(data["answer_within_s"]), same_wait=True)
        if data.get("action") == "offer_callback":  # the CallbackScheduled that follows: slotted so
            contact.callback_within_hours = bool((data.get("params") or {}).get("within_business_hours"))

    def _new_target(self, contact: _Contact, target_s: float, *, same_wait: bool) -> None:
        if same_wait and contact.sla_due_s is not None and contact.answer_within_s is not None:
            contact.sla_due_s += target_s - contact.answer_within_s
        contact.answer_within_s = target_s

    def _offer_resolved(self, contact_id: Key, contact: _Contact, data: dict[str, Any],
                        event: RecordedEvent) -> None:
        # An accept too: accepting an offer already expired or revoked resolves it twice.
        open_offer = self.offers.pop((contact_id[0], data["offer_id"]), None)
        if open_offer is None:
            self.violations.append(f"offer {data['offer_id']} of contact {_named(contact_id)} resolved twice or "
                                   f"never made ({event.type}, position {event.position})")
        elif event.type == ev.OFFER_ACCEPTED:
            contact.accepted[data["offer_id"]] = open_offer[1]
        if event.type != ev.OFFER_ACCEPTED and contact.offer_id == data["offer_id"]:
            contact.offer_id = None  # (an accepted offer stays the contact's until it is assigned)

    def _requeued(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        reason = data.get("reason")
        if reason == "max_wait_overflow":
            self._overflowed(contact_id, contact, data, event)
        contact.assignee = None
        # A move keeps every hard requirement. Only a transfer (which names its own target)
        # and a named agent's fallback let the named agent go; an overflow keeps it too.
        if contact.transferring or reason in ("transfer", "named_agent_fallback"):
            contact.hard = [r for r in contact.hard if r["kind"] != "agent"]
        contact.transferring = False
        self._kept_hard(contact_id, contact, data.get("requirements", []), event)
        # A named agent (a transfer to an agent) is a hard requirement until its fallback.
        contact.hard = [r for r in data.get("requirements", []) if r.get("hard")]
        contact.moved = True
        contact.queue_id = data.get("queue_id", contact.queue_id)
        contact.moved_at_s = None if data.get("at_s") is None else float(data["at_s"])
        # That queue's own max wait and overflow, from the move (none: it stays there).
        contact.max_wait_s = None if data.get("max_wait_s") is None else float(data["max_wait_s"])
        contact.overflow_to = data.get("overflow_to")
        if data.get("answer_within_s") is not None:  # a move to a queue with its own target
            self._new_target(contact, float(data["answer_within_s"]), same_wait=bool(data.get("same_wait")))
        if not data.get("same_wait"):  # a transfer: a new wait (a fallback, an overflow go on with the same)
            contact.answered = False
            self._waits_again(contact, data)

    def _overflowed(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        """A transferred contact's overflow: only while it waits, to its queue's `overflow_to`,
        once that queue's max wait has passed since the move."""
        name, to, at = _named(contact_id), data.get("queue_id"), f"(position {event.position})"
        if contact.finished or contact.assignee is not None or not contact.queued:
            self.violations.append(f"contact {name} overflowed to {to} while it was not waiting {at}")
        elif not contact.moved or contact.max_wait_s is None or contact.overflow_to != to:
            self.violations.append(f"contact {name} overflowed to {to} {at}, but queue {contact.queue_id} "
                                   f"overflows to {contact.overflow_to if contact.moved else 'nothing moved'}")
        elif (contact.moved_at_s is not None and data.get("at_s") is not None
              and float(data["at_s"]) < contact.moved_at_s + contact.max_wait_s - EPSILON_S):
            self.violations.append(f"contact {name} overflowed to {to} at {float(data['at_s']):.0f} {at}, before "
                                   f"its max wait in {contact.queue_id} passed "
                                   f"({contact.moved_at_s + contact.max_wait_s:.0f})")

    def _callback_scheduled(self, contact_id: Key, contact: _Contact, data: dict[str, Any],
                            event: RecordedEvent) -> None:
        # Slotted by the plan's version (on time) or the active one (a step applied late): any
        # version published so far may have stated the hours.
        known = tuple(self.policies.get(contact_id[0], {}).values())
        within, contact.callback_within_hours = contact.callback_within_hours, False
        self._promise(contact_id, contact, float(data["callback_at_s"]), data.get("at_s"), within, known, event)

    def _promise(self, contact_id: Key, contact: _Contact, slot_s: float, at_s: Any, within_hours: bool,
                 policies: tuple[_Policy, ...], event: RecordedEvent) -> None:
        """A callback promised: in the customer's windows (and business hours), never in the past."""
        self.counts["callbacks_promised"] += 1
        contact.callback_at_s = slot_s
        contact.callback = promise = _Callback(slot_s, event.position, within_hours, policies)
        name = _named(contact_id)
        if at_s is not None and slot_s < float(at_s) - EPSILON_S:
            self.violations.append(f"contact {name}: {event.type} (position {event.position}) promised a callback "
                                   f"for {_when(promise)}, already past when promised ({float(at_s):.0f})")
        outside = _outside(promise, slot_s, contact.windows)
        if outside:
            self.violations.append(f"contact {name}: {event.type} (position {event.position}) promised a callback "
                                   f"for {_when(promise)}, outside {outside}")

    def _callback_due(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        """Carried out: the router calls back a contact nobody answered, at or after its slot
        (later only after a stop, and then still in the hours the slot was chosen by)."""
        self.counts["callbacks_due"] += 1
        promise, name, at_s = contact.callback, _named(contact_id), data.get("at_s")
        where = f"(position {event.position})"
        if promise is None:
            self.violations.append(f"contact {name}: CallbackDue {where} with no callback promised")
        elif contact.answered:
            self.violations.append(f"contact {name}: CallbackDue {where}, though an agent answered it after the "
                                   f"promise")
        elif at_s is not None and float(at_s) < promise.at_s - EPSILON_S:
            self.violations.append(f"contact {name}: called back at {_when(promise, float(at_s))} {where}, before "
                                   f"its slot {_when(promise)}")
        elif at_s is not None and float(at_s) > promise.at_s + TIMER_GRACE_S:
            outside = _outside(promise, float(at_s), contact.windows)
            if outside:
                self.violations.append(f"contact {name}: called back at {_when(promise, float(at_s))} {where}, "
                                       f"late for its slot {_when(promise)} and outside {outside}")
        contact.callback = None
        # As the router does: a contact whose customer left (and nobody answered) waits again,
        # and so does one still waiting; one with an offer out goes on with its wait.
        reopened = contact.finished and not contact.answered
        if reopened:
            contact.finished = False
            contact.resumed_at_s = float(at_s) if at_s is not None else contact.resumed_at_s
        if reopened or (not contact.finished and contact.assignee is None and contact.offer_id is None):
            self._waits_again(contact, data)

    def _finished(self, contact: _Contact, kind: str) -> None:
        waiting = contact.queued and not contact.finished and contact.assignee is None
        if kind == ev.CUSTOMER_ABANDONED and waiting and contact.callback is not None:
            self.counts["hung_up_awaiting_callback"] += 1  # no abandon: the callback is the contact's answer
        else:
            self.counts[kind] += 1
        contact.finished = True
        contact.assignee = None
        contact.offer_id = None
        contact.sla_due_s = None

    @staticmethod
    def _waits_again(contact: _Contact, data: dict[str, Any]) -> None:
        contact.breached = False
        if contact.answer_within_s is not None and data.get("at_s") is not None:  # a new wait, its own SLA clock
            contact.sla_due_s = float(data["at_s"]) + contact.answer_within_s

    def _assigned(self, contact_id: Key, contact: _Contact, data: dict[str, Any], event: RecordedEvent) -> None:
        self.counts["assigned"] += 1
        contact.sla_due_s = None
        contact.offer_id = None
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
        contact.answered = True
        agent = self.agents.get((contact_id[0], agent_id), _Agent())
        for req in contact.hard:
            if not _meets(agent_id, agent, req):
                self.violations.append(f"contact {name} assigned to {agent_id}, who does not meet the hard "
                                       f"requirement {req['kind']} {req['name']} (position {event.position})")

    def _kept_hard(self, contact_id: Key, contact: _Contact, now_required: list[dict[str, Any]],
                   event: RecordedEvent) -> None:
        """Every hard requirement still there, as strict and still hard (a soft one could be relaxed next)."""
        for req in contact.hard:
            if not any(r["kind"] == req["kind"] and r["name"] == req["name"] and r.get("hard")
                       and int(r.get("min_level", 0)) >= int(req.get("min_level", 0)) for r in now_required):
                self.violations.append(f"{event.type} relaxed the hard requirement {req['kind']} {req['name']} "
                                       f"of contact {_named(contact_id)} (position {event.position})")

    # -- the verdict ----------------------------------------------------------------------

    def report(self, now_s: float) -> dict[str, Any]:
        violations = list(self.violations)
        # Timers (an offer's expiry, a placement, an SLA, a deadline, a step, an overflow, a
        # callback) are judged against the log's own clock: while nothing was written (a router
        # stopped for the night), nothing could have fired or been placed, and that is not a violation.
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
            owed = _owed(contact)
            if owed:
                violations += self._callback_missed(contact_id, contact, timers_by_s)
            if contact.arrived_s is None or (contact.finished and not owed):
                continue
            waiting += 1
            if contact.finished:  # the customer left; the callback is still to come
                continue
            violations += self._timers_missed(contact_id, contact, timers_by_s)
            if not contact.placed and contact.arrived_s + PLACE_GRACE_S < log_now_s:
                violations.append(f"contact {_named(contact_id)} arrived and was never placed in a queue")
        owed_count = sum(1 for c in self.contacts.values() if _owed(c))
        return {
            "ok": not violations,
            "events": self.counts["events"], "contacts": len(self.contacts), "agents": len(self.agents),
            "offers": self.counts["offers"], "assigned": self.counts["assigned"],
            "completed": self.counts[ev.CONTACT_COMPLETED], "abandoned": self.counts[ev.CUSTOMER_ABANDONED],
            "open_offers": len(self.offers), "not_finished": waiting,
            "callbacks_promised": self.counts["callbacks_promised"], "callbacks_due": self.counts["callbacks_due"],
            "callbacks_owed": owed_count, "hung_up_awaiting_callback": self.counts["hung_up_awaiting_callback"],
            "violations": violations[:200], "violation_count": len(violations),
        }

    @staticmethod
    def _callback_missed(contact_id: Key, contact: _Contact, timers_by_s: float) -> list[str]:
        promise = contact.callback
        assert promise is not None
        if promise.at_s < timers_by_s:
            return [f"contact {_named(contact_id)}: the callback promised for {_when(promise)} (position "
                    f"{promise.position}) was never carried out (no CallbackDue)"]
        return []

    def _timers_missed(self, contact_id: Key, contact: _Contact, timers_by_s: float) -> list[str]:
        """The timers of a contact still waiting (or offered): its SLA, its plan's next
        escalation step, or (moved off its plan) its queue's overflow."""
        out, name = [], _named(contact_id)
        if contact.sla_due_s is not None and contact.sla_due_s < timers_by_s:
            out.append(f"contact {name} waited past its SLA (due at {contact.sla_due_s:.0f}) and no SlaBreached "
                       "was recorded")
        if not contact.queued or contact.assignee is not None or contact.queued_at_s is None:
            return out
        step = contact.steps_done
        if not contact.moved and step < len(contact.steps_after_s):
            # A step due while the contact was not waiting (it had hung up) comes due when it waits again.
            due_s = max(contact.queued_at_s + contact.steps_after_s[step], contact.resumed_at_s)
            if due_s < timers_by_s:
                out.append(f"contact {name}: escalation step {step} was due at {due_s:.0f} and never applied")
        elif (contact.moved and contact.max_wait_s is not None and contact.overflow_to
              and contact.moved_at_s is not None and self._in_every_version(contact_id[0], contact.overflow_to)):
            due_s = max(contact.moved_at_s + contact.max_wait_s, contact.resumed_at_s)
            if due_s < timers_by_s:
                out.append(f"contact {name}: its overflow from {contact.queue_id} to {contact.overflow_to} was due "
                           f"at {due_s:.0f} ({contact.max_wait_s:.0f} s after its move) and never applied")
        return out


_NOT_AFTER_AN_END = frozenset({ev.OFFER_MADE, ev.CONTACT_QUEUED, ev.CONTACT_REQUEUED})  # not after an end


def _owed(contact: _Contact) -> bool:
    """A callback promised and still to be made: the router's timer runs while nobody answered
    the contact since (an answer keeps the promise; a transfer after it makes it owed again)."""
    return contact.callback is not None and contact.queued and not contact.answered


def _named(key: Key) -> str:
    """An agent's or contact's id as a report names it: the domain only when not the default."""
    domain, entity_id = key
    return entity_id if domain == "default" else f"{entity_id} (domain {domain})"


def _when(promise: _Callback, at_s: float | None = None) -> str:
    """A moment as the bank's clock shows it (the policy's zone), with its epoch seconds."""
    at_s = promise.at_s if at_s is None else at_s
    if not promise.policies:
        return f"{at_s:.0f}"
    local = datetime.fromtimestamp(at_s, promise.policies[0].zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {promise.policies[0].zone.key} ({at_s:.0f})"


def _outside(promise: _Callback, at_s: float, windows: tuple[Window, ...]) -> str:
    """What a moment is outside of (the customer's windows, business hours), '' when inside
    them by any of the policy versions that may have stated them. Unknown policy: not judged."""
    reasons: list[str] = []
    for policy in promise.policies:
        local = datetime.fromtimestamp(at_s, policy.zone)
        minute = local.hour * 60 + local.minute
        # A slot in a daylight-saving gap is taken at the jump (policies.hours): that instant is fine.
        jumped = datetime.fromtimestamp(at_s - 60, policy.zone).utcoffset() != local.utcoffset()
        closed = promise.within_hours and policy.calendar is not None and not policy.calendar.is_open(local)
        unwanted = bool(windows) and not any(_in_window(minute, w) for w in windows)
        if jumped or not (closed or unwanted):
            return ""
        if not reasons:
            reasons = ([f"the business hours of policy v{policy.version}"] if closed else []) + (
                [f"the customer's callback windows ({', '.join(_window_text(w) for w in windows)})"]
                if unwanted else [])
    return " and ".join(reasons)


def _in_window(minute: int, window: Window) -> bool:
    start, end = window
    return start <= minute < end if start < end else (minute >= start or minute < end)


def _window_text(window: Window) -> str:
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in window)


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

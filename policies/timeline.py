"""A matched rule's requirements and escalation timeline for one contact.

The walk merges the rule's own steps with each queue's `max_wait_s` overflow,
in waiting-time order, and records after every step the queue and requirements
in force. This is the one place requirements change, so it is the one place
that guarantees a hard requirement is never relaxed and survives every move,
and that a customer who speaks the home language, when a language requirement
is dropped, still gets an agent who speaks the home language.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from policies.hours import Calendar
from policies.plan import EscalationStep, ParamValue, Requirement, RequirementKind, StepAction
from policies.schema import CONTACT, UNLESS_HOME, RelaxSpec, RequirementSpec, StepSpec
from policies.vocabulary import ContactFacts

MAX_STEPS = 64


@dataclass(frozen=True, slots=True)
class QueueInfo:
    id: str
    index: int
    name: str
    answer_within_s: float
    target_pct: float
    max_wait_s: float | None
    overflow_to: str | None
    wrapup_s: float
    require: tuple[RequirementSpec, ...]


@dataclass(frozen=True, slots=True)
class TimelineContext:
    queues: Mapping[str, QueueInfo]
    home_language: str
    zone: ZoneInfo
    calendar: Calendar | None  # the bank's business hours, for callbacks


def resolve(spec: RequirementSpec, contact: ContactFacts, home_language: str) -> Requirement | None:
    """The requirement for this contact; None for `agent: dedicated` when the customer has none.

    `unless_speaks_home_language` is soft only when the customer speaks the home
    language and the language asked for is another one (the home language is the fallback).
    """
    if spec.skill is not None:
        return Requirement(RequirementKind.SKILL, spec.skill, spec.min_level, spec.hard is True)
    kind, name = _target(spec.kind, spec.target, contact)
    if name is None:
        return None
    unless_home = spec.hard == UNLESS_HOME and (home_language not in contact.languages or name == home_language)
    return Requirement(kind, name, 0, spec.hard is True or unless_home)


def resolve_all(specs: Sequence[RequirementSpec], contact: ContactFacts, home: str) -> tuple[Requirement, ...]:
    return tuple(r for r in (resolve(s, contact, home) for s in specs) if r is not None)


def _target(kind: str, target: str, contact: ContactFacts) -> tuple[RequirementKind, str | None]:
    if kind == "language":
        return RequirementKind.LANGUAGE, contact.language if target == CONTACT else target
    if kind == "channel":
        return RequirementKind.CHANNEL, contact.channel.value if target == CONTACT else target
    if kind == "agent":
        return RequirementKind.AGENT, contact.dedicated_agent if target == "dedicated" else contact.last_agent
    return RequirementKind.SKILL, target


def merge(*groups: Sequence[Requirement]) -> tuple[Requirement, ...]:
    """All requirements of all groups; where two name the same thing, the stricter wins."""
    merged: dict[tuple[RequirementKind, str], Requirement] = {}
    for req in (r for group in groups for r in group):
        old = merged.get((req.kind, req.name))
        if old is not None:
            req = replace(req, min_level=max(old.min_level, req.min_level), hard=old.hard or req.hard)
        merged[(req.kind, req.name)] = req
    return tuple(merged.values())


def queue_requirements(queue: QueueInfo, contact: ContactFacts, home: str) -> tuple[Requirement, ...]:
    return resolve_all(queue.require, contact, home)


@dataclass(slots=True)
class _Walk:
    ctx: TimelineContext
    contact: ContactFacts
    queue: str
    requirements: tuple[Requirement, ...]
    entered_s: float = 0.0
    max_wait_done: bool = False
    visited: set[str] = field(default_factory=set)
    steps: list[EscalationStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def emit(self, after_s: float, action: StepAction, params: dict[str, ParamValue], source: str,
             priority_delta: float = 0.0) -> None:
        self.steps.append(EscalationStep(after_s, action, params, self.queue, self.requirements,
                                         priority_delta, source))

    def move(self, target: str, after_s: float) -> None:
        """Into `target`: its requirements, every hard one, and the home-language fallback."""
        carried = tuple(r for r in self.requirements if r.hard) + tuple(
            f for r in self.requirements if not r.hard and (f := self.fallback(r)) is not None)
        info = self.ctx.queues[target]
        self.requirements = merge(queue_requirements(info, self.contact, self.ctx.home_language), carried)
        self.queue, self.entered_s, self.max_wait_done = target, after_s, False
        self.visited.add(target)

    def fallback(self, req: Requirement) -> Requirement | None:
        """What a dropped language requirement leaves: the home language, if the customer speaks it."""
        home = self.ctx.home_language
        if req.kind is RequirementKind.LANGUAGE and req.name != home and home in self.contact.languages:
            return Requirement(RequirementKind.LANGUAGE, home, 0, True)
        return None

    def note(self, source: str, text: str) -> None:
        if not source.startswith("defaults"):  # blanket steps skip quietly where they do not apply
            self.notes.append(f"{source}: {text}")

    def next_max_wait_s(self) -> float:
        info = self.ctx.queues[self.queue]
        if self.max_wait_done or info.max_wait_s is None:
            return math.inf
        return self.entered_s + info.max_wait_s

    def fire_max_wait(self, after_s: float) -> None:
        info = self.ctx.queues[self.queue]
        self.max_wait_done = True
        source = f"queues[{info.index}].max_wait_s"
        target = info.overflow_to
        if target is None or target in self.visited or target not in self.ctx.queues:
            if target is not None:
                self.notes.append(f"{source}: overflow to '{target}' skipped, it would loop")
            self.emit(after_s, StepAction.MAX_WAIT_REACHED, {"queue": self.queue}, source)
            return
        origin = self.queue
        self.move(target, after_s)
        self.emit(after_s, StepAction.OVERFLOW, {"from_queue": origin, "queue": target}, source)


def walk(
    ctx: TimelineContext, contact: ContactFacts,
    queue: str, requirements: tuple[Requirement, ...], steps: Sequence[tuple[str, StepSpec]],
) -> tuple[tuple[EscalationStep, ...], tuple[str, ...]]:
    """The escalation timeline of a rule for this contact, and notes on steps left out.

    `steps` pairs each step with its source path (e.g. "rules[3].escalate[1]").
    It does not depend on the instant; callback slots are left for the caller to fill.
    """
    state = _Walk(ctx, contact, queue, requirements, visited={queue})
    for source, spec in sorted(steps, key=lambda pair: pair[1].after_s):
        _fire_max_waits_before(state, spec.after_s)
        _apply(state, spec, source)
    _fire_max_waits_before(state, math.inf)
    return tuple(state.steps), tuple(state.notes)


def _fire_max_waits_before(state: _Walk, limit_s: float) -> None:
    while len(state.steps) < MAX_STEPS and (at := state.next_max_wait_s()) < limit_s:
        state.fire_max_wait(at)


def _apply(state: _Walk, spec: StepSpec, source: str) -> None:
    after = spec.after_s
    if spec.relax is not None:
        _relax(state, spec.relax, after, source)
    elif spec.raise_priority is not None:
        state.emit(after, StepAction.RAISE_PRIORITY, {"by": spec.raise_priority}, source, spec.raise_priority)
    elif spec.overflow is not None:
        _overflow(state, spec.overflow, after, source)
    elif spec.offer_callback is not None:
        _callback(state, spec.offer_callback.within_business_hours, after, source)
    elif spec.page_supervisor is not None:
        state.emit(after, StepAction.PAGE_SUPERVISOR, {"queue": state.queue}, source)
    elif spec.escalate is not None:
        target = spec.escalate.queue
        if target is not None and target != state.queue and target in state.ctx.queues:
            state.move(target, after)
        state.emit(after, StepAction.ESCALATE, {"level": spec.escalate.to, "queue": state.queue}, source)


def _overflow(state: _Walk, target: str, after_s: float, source: str) -> None:
    if target == state.queue or target not in state.ctx.queues:
        state.notes.append(f"{source}: overflow to '{target}' skipped, the contact is already there")
        return
    origin = state.queue
    state.move(target, after_s)
    state.emit(after_s, StepAction.OVERFLOW, {"from_queue": origin, "queue": target}, source)


def _callback(state: _Walk, within_hours: bool, after_s: float, source: str) -> None:
    """The slot (`callback_at_s`) depends on the instant: the engine fills it in per evaluation."""
    params: dict[str, ParamValue] = {"callback_at_s": None, "within_business_hours": within_hours}
    state.emit(after_s, StepAction.OFFER_CALLBACK, params, source)


def _relax(state: _Walk, spec: RelaxSpec, after_s: float, source: str) -> None:
    kind, name = _target(spec.kind, spec.target, state.contact)
    found = next((r for r in state.requirements if r.kind == kind and r.name == name), None)
    label = f"{kind.value} {name or spec.target}"
    if found is None:
        state.note(source, f"relax {label} skipped, it is not required at that point")
        return
    if found.hard:
        state.note(source, f"relax {label} skipped, it is a hard requirement for this contact")
        return
    if spec.to is not None and spec.to >= found.min_level:
        state.note(source, f"relax {label} to {spec.to} skipped, it is already {found.min_level}")
        return
    fallback = state.fallback(found)
    lowered = (replace(found, min_level=spec.to),) if spec.to is not None else (fallback,) if fallback else ()
    state.requirements = merge(tuple(r for r in state.requirements if r is not found), lowered)
    params: dict[str, ParamValue] = {"kind": kind.value, "name": name, "to": spec.to}
    state.emit(after_s, StepAction.RELAX, params, source)

"""What the engine decides for one contact, and pure helpers to read it over waiting time.

A `RoutingPlan` is complete at arrival: each escalation step carries the queue
and the requirements in force from that step on, so the router never re-runs
the policy while a contact waits; it asks `queue_at`, `requirements_at`,
`priority_at` and `due_steps` with the seconds waited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import overload

from policies.vocabulary import Strategy

ParamValue = str | int | float | bool | None


class RequirementKind(StrEnum):
    SKILL = "skill"
    LANGUAGE = "language"
    CHANNEL = "channel"
    AGENT = "agent"  # one named agent (the customer's dedicated or last agent)


@dataclass(frozen=True, slots=True)
class Requirement:
    """What an agent must have: a skill at `min_level` (1-5), a language, a channel, or be a named agent.

    A `hard` requirement is never relaxed by any escalation step.
    """

    kind: RequirementKind
    name: str
    min_level: int = 0
    hard: bool = False

    def describe(self) -> str:
        if self.kind is RequirementKind.SKILL:
            return f"skill {self.name}>={self.min_level}"
        if self.kind is RequirementKind.AGENT:
            return f"agent {self.name}"
        return f"{self.kind.value} {self.name}"

    def to_json(self) -> dict[str, ParamValue]:
        return {"kind": self.kind.value, "name": self.name, "min_level": self.min_level, "hard": self.hard}


class StepAction(StrEnum):
    RELAX = "relax"
    RAISE_PRIORITY = "raise_priority"
    OVERFLOW = "overflow"
    OFFER_CALLBACK = "offer_callback"
    PAGE_SUPERVISOR = "page_supervisor"
    ESCALATE = "escalate"
    MAX_WAIT_REACHED = "max_wait_reached"  # the queue's max_wait_s passed and it has no overflow


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """After `after_s` seconds of waiting: `action` with `params`; then `queue` and
    `requirements` are what is in force (unchanged unless the action moved or relaxed)."""

    after_s: float
    action: StepAction
    params: Mapping[str, ParamValue]
    queue: str
    requirements: tuple[Requirement, ...]
    priority_delta: float = 0.0
    source: str = ""  # e.g. "rules[4].escalate[1]" or "queues[2].max_wait_s"

    def to_json(self) -> dict[str, object]:
        return {
            "after_s": self.after_s,
            "action": self.action.value,
            "params": dict(self.params),
            "queue": self.queue,
            "requirements": [r.to_json() for r in self.requirements],
            "priority_delta": self.priority_delta,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Deadline:
    name: str  # e.g. "follow_up"
    due_s: float  # absolute epoch seconds


class Explanation(Sequence[str]):
    """Reasons computed on first read: evaluation stays fast, explanation stays complete.

    The producer is a pure function of the contact, the instant and the compiled
    policy, so reading it later gives exactly what reading it now would.
    """

    __slots__ = ("_make", "_lines")

    def __init__(self, make: Callable[[], tuple[str, ...]]) -> None:
        self._make: Callable[[], tuple[str, ...]] | None = make
        self._lines: tuple[str, ...] = ()

    def _all(self) -> tuple[str, ...]:
        if self._make is not None:
            self._lines, self._make = self._make(), None
        return self._lines

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"Explanation({self._all()!r})"


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    policy_version: int
    rule_id: str
    rule_index: int
    queue_id: str
    requirements: tuple[Requirement, ...]
    priority: float
    priority_growth_per_min: float
    offer_timeout_s: float
    strategy: Strategy
    answer_within_s: float
    target_pct: float
    max_wait_s: float | None
    wrapup_s: float
    escalations: tuple[EscalationStep, ...]
    deadlines: tuple[Deadline, ...]
    after_hours: bool
    callback_at_s: float | None  # a callback decided at arrival (e.g. after hours), epoch seconds
    arrived_s: float
    reasons: Sequence[str]

    @property
    def follow_up_due_s(self) -> float | None:
        return next((d.due_s for d in self.deadlines if d.name == "follow_up"), None)

    def to_json(self) -> dict[str, object]:
        """JSON-ready, e.g. for the event that records the decision (reasons included)."""
        return {
            "policy_version": self.policy_version, "rule_id": self.rule_id, "rule_index": self.rule_index,
            "queue_id": self.queue_id, "requirements": [r.to_json() for r in self.requirements],
            "priority": self.priority, "priority_growth_per_min": self.priority_growth_per_min,
            "offer_timeout_s": self.offer_timeout_s, "strategy": self.strategy.value,
            "answer_within_s": self.answer_within_s, "target_pct": self.target_pct,
            "max_wait_s": self.max_wait_s, "wrapup_s": self.wrapup_s,
            "escalations": [s.to_json() for s in self.escalations],
            "deadlines": {d.name: d.due_s for d in self.deadlines},
            "after_hours": self.after_hours, "callback_at_s": self.callback_at_s, "arrived_s": self.arrived_s,
            "reasons": list(self.reasons),
        }


def due_steps(plan: RoutingPlan, waited_s: float) -> tuple[EscalationStep, ...]:
    """Every step whose time has come after `waited_s` seconds, in order."""
    return tuple(s for s in plan.escalations if s.after_s <= waited_s)


def next_step(plan: RoutingPlan, waited_s: float) -> EscalationStep | None:
    """The first step still to come: the router arms one timer for it."""
    return next((s for s in plan.escalations if s.after_s > waited_s), None)


def priority_at(plan: RoutingPlan, waited_s: float) -> float:
    raised = sum(s.priority_delta for s in plan.escalations if s.after_s <= waited_s)
    return plan.priority + plan.priority_growth_per_min * max(waited_s, 0.0) / 60.0 + raised


def requirements_at(plan: RoutingPlan, waited_s: float) -> tuple[Requirement, ...]:
    """Requirements after every due relax/overflow; hard ones are never dropped (see timeline)."""
    current = plan.requirements
    for step in plan.escalations:
        if step.after_s > waited_s:
            break
        current = step.requirements
    return current


def queue_at(plan: RoutingPlan, waited_s: float) -> str:
    current = plan.queue_id
    for step in plan.escalations:
        if step.after_s > waited_s:
            break
        current = step.queue
    return current

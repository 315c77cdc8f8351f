"""Who may take a contact (predicates with reasons), kept apart from who goes first (ranking).

`ineligibility` lists every reason an agent cannot take a contact now; an empty
tuple means eligible. `rank` only orders agents already found eligible, by the
plan's strategy, with `agent_id` as the final deterministic tie-break.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policies.plan import Requirement, RequirementKind
from policies.vocabulary import AgentSnapshot, Channel, ContactFacts, Presence, Strategy

SortKey = tuple[float | int | str | bool, ...]


def presence_reasons(agent: AgentSnapshot) -> tuple[str, ...]:
    if agent.in_wrapup:
        return ("in wrap-up",)
    if agent.presence is not Presence.AVAILABLE:
        return (f"presence is {agent.presence.value}",)
    return ()


def capacity_reasons(agent: AgentSnapshot, channel: Channel) -> tuple[str, ...]:
    """Pending offers count against the contact's channel too: an offer may be accepted any moment."""
    capacity = agent.profile.channels.get(channel, 0)
    if capacity <= 0:
        return (f"does not serve channel {channel.value}",)
    used = agent.load.get(channel, 0) + agent.pending_offers
    if used >= capacity:
        return (f"no capacity on {channel.value} ({used}/{capacity} busy)",)
    if agent.total_load >= agent.profile.total_capacity:
        return (f"no capacity in total ({agent.total_load}/{agent.profile.total_capacity} busy)",)
    return ()


def requirement_reason(agent: AgentSnapshot, req: Requirement) -> str | None:
    profile = agent.profile
    if req.kind is RequirementKind.SKILL:
        level = profile.skills.get(req.name, 0)
        if level == 0:
            return f"missing skill {req.name}"
        return f"skill {req.name} is {level}, below {req.min_level}" if level < req.min_level else None
    if req.kind is RequirementKind.LANGUAGE:
        return None if req.name in profile.languages else f"does not speak {req.name}"
    if req.kind is RequirementKind.AGENT:
        return None if agent.agent_id == req.name else f"only agent {req.name} may take it now"
    served = any(ch.value == req.name and cap > 0 for ch, cap in profile.channels.items())
    return None if served else f"does not serve channel {req.name}"


def ineligibility(
    agent: AgentSnapshot, requirements: Sequence[Requirement], contact: ContactFacts
) -> tuple[str, ...]:
    """Every reason this agent cannot take this contact now; () when it can."""
    reasons = presence_reasons(agent) + capacity_reasons(agent, contact.channel)
    missing = tuple(r for r in (requirement_reason(agent, req) for req in requirements) if r is not None)
    if reasons and missing:  # a channel requirement on the contact's own channel says what capacity said
        return tuple(dict.fromkeys(reasons + missing))
    return reasons + missing


def is_eligible(agent: AgentSnapshot, requirements: Sequence[Requirement], contact: ContactFacts) -> bool:
    return not ineligibility(agent, requirements, contact)


@dataclass(frozen=True, slots=True)
class Partition:
    eligible: tuple[AgentSnapshot, ...]
    ineligible: dict[str, tuple[str, ...]]  # agent_id -> reasons


def partition(
    agents: Sequence[AgentSnapshot], requirements: Sequence[Requirement], contact: ContactFacts
) -> Partition:
    eligible: list[AgentSnapshot] = []
    ineligible: dict[str, tuple[str, ...]] = {}
    for agent in agents:
        reasons = ineligibility(agent, requirements, contact)
        if reasons:
            ineligible[agent.agent_id] = reasons
        else:
            eligible.append(agent)
    return Partition(tuple(eligible), ineligible)


def skill_score(agent: AgentSnapshot, requirements: Sequence[Requirement]) -> tuple[int, int]:
    """(sum, max) of the agent's proficiency over the required skills."""
    levels = [agent.profile.skills.get(r.name, 0) for r in requirements if r.kind is RequirementKind.SKILL]
    return sum(levels), max(levels, default=0)


def busy_ratio(agent: AgentSnapshot) -> float:
    capacity = agent.profile.total_capacity
    return agent.total_load / capacity if capacity > 0 else float("inf")


def sort_key(
    strategy: Strategy, requirements: Sequence[Requirement], contact: ContactFacts
) -> Callable[[AgentSnapshot], SortKey]:
    def key(agent: AgentSnapshot) -> SortKey:
        idle = (agent.idle_since_s, agent.agent_id)
        if strategy is Strategy.MOST_SKILLED:
            total, best = skill_score(agent, requirements)
            return (-total, -best, *idle)
        if strategy is Strategy.LEAST_BUSY:
            return (busy_ratio(agent), *idle)
        if strategy is Strategy.DEDICATED_FIRST:
            return (agent.agent_id != contact.dedicated_agent, *idle)
        if strategy is Strategy.LAST_AGENT_FIRST:
            return (agent.agent_id != contact.last_agent, *idle)
        return idle

    return key


def rank(
    agents: Sequence[AgentSnapshot],
    requirements: Sequence[Requirement],
    strategy: Strategy,
    contact: ContactFacts,
    now_s: float,
) -> list[AgentSnapshot]:
    """Order eligible agents best first. Ties on the strategy fall to longest idle, then agent_id.

    `now_s` is accepted so every strategy sees the same instant; ordering by
    `idle_since_s` is the same as ordering by idle time at `now_s`.
    """
    del now_s
    return sorted(agents, key=sort_key(strategy, requirements, contact))

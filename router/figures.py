"""Live queue figures, computed from the router's state (pure: `now_s` is an argument).

Service level: the share of contacts answered within the queue's SLA target among
those answered or abandoned in the window, abandons under 5 s excluded (a caller who
hangs up at once was never really waiting). Average speed of answer: the mean wait
of answered contacts. Abandonment rate: abandons (5 s or more) over all finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from policies.engine import CompiledPolicy
from policies.decisions import CONTACT
from policies.vocabulary import Channel, Presence

from .state import ASSIGNED, BUCKET_S, OFFERED, WAITING, AgentState, Outcome, RouterState, Tally, answer_within_s

WINDOW_S = 15 * 60


def window_json(tally: Tally) -> dict[str, Any]:
    counted = tally.answered + tally.abandoned
    return {
        "answered": tally.answered, "abandoned": tally.abandoned, "short_abandons_excluded": tally.short_abandons,
        "service_level_pct": round(100.0 * tally.within_sla / counted, 1) if counted else None,
        "average_speed_of_answer_s": round(tally.wait_total_s / tally.answered, 1) if tally.answered else None,
        "abandonment_rate_pct": round(100.0 * tally.abandoned / counted, 1) if counted else None,
    }


def window(outcomes: Iterable[Outcome]) -> Tally:
    tally = Tally()
    for outcome in outcomes:
        tally.add(outcome)
    return tally


Needs = tuple[tuple[tuple[str, int], ...], tuple[Channel, ...], tuple[str, ...]]  # skills, channels, languages


def _needs(policy: CompiledPolicy, queue_id: str) -> Needs:
    """What every contact of the queue needs of an agent: the policy's defaults and the
    queue's own skills, and a channel or language they name (a `contact` one varies per
    contact). Before, only skills counted: a queue requiring video or Japanese counted every
    voice-only or Chinese-only agent as one of its agents."""
    specs = (*policy.document.defaults.require, *policy.queue(queue_id).require)
    return (tuple(sorted((s.skill, s.min_level) for s in specs if s.skill is not None)),
            tuple(sorted({Channel(s.channel) for s in specs if s.channel is not None and s.channel != CONTACT})),
            tuple(sorted({str(s.language) for s in specs if s.language not in (None, CONTACT)})))


def _serves(agent: AgentState, needs: Needs) -> bool:
    profile = agent.profile
    if profile is None:
        return False
    skills, channels, languages = needs
    return (all(profile.skills.get(skill, 0) >= level for skill, level in skills)
            and all(profile.channels.get(channel, 0) > 0 for channel in channels)
            and all(language in profile.languages for language in languages))


def _agents_by_needs(state: RouterState, wanted: Iterable[Needs]) -> dict[Needs, dict[str, int]]:
    """Agents per state for each distinct set of needs (most queues share one: counted once)."""
    counts = {needs: {"available": 0, "busy": 0, "away": 0, "offline": 0} for needs in wanted}
    for agent in state.agents.values():
        bucket = _agent_bucket(agent)
        for needs, agents in counts.items():
            if _serves(agent, needs):
                agents[bucket] += 1
    return counts


def _agent_bucket(agent: AgentState) -> str:
    if agent.presence is Presence.AVAILABLE and (agent.contacts or agent.offers or agent.wrapup_until_s is not None):
        return "busy"
    if agent.presence is Presence.AVAILABLE:
        # A desk that dropped is in its grace period: offered nothing until it is back, so
        # not available to the queue, though not yet recorded as disconnected either.
        return "available" if agent.connected else "away"
    return "away" if agent.presence is Presence.AWAY else "offline"


def queue_figures(state: RouterState, policy: CompiledPolicy, now_s: float, zone: ZoneInfo) -> list[dict[str, Any]]:
    midnight_s = datetime.fromtimestamp(now_s, zone).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    today: dict[str, Tally] = {}
    for (bucket, queue_id), tally in state.tallies.items():
        if bucket * BUCKET_S >= midnight_s:
            today.setdefault(queue_id, Tally()).merge(tally)
    recent: dict[str, list[Outcome]] = {}
    for outcome in state.outcomes:
        if outcome.at_s >= now_s - WINDOW_S:
            recent.setdefault(outcome.queue_id, []).append(outcome)
    waiting: dict[str, list[float]] = {}
    assigned: dict[str, int] = {}
    targets: dict[str, float] = {}  # what contacts in a queue are held to (for queues the policy dropped)
    for contact in state.contacts.values():
        if contact.queue_id is None:
            continue
        if contact.plan is not None:
            targets.setdefault(contact.queue_id, answer_within_s(contact))
        if contact.status in (WAITING, OFFERED):
            waiting.setdefault(contact.queue_id, []).append(now_s - contact.wait_from_s)
        elif contact.status == ASSIGNED:
            assigned[contact.queue_id] = assigned.get(contact.queue_id, 0) + 1

    def entry(queue_id: str, name: str, sla: dict[str, Any], agents: dict[str, int], retired: bool) -> dict[str, Any]:
        waits = waiting.get(queue_id, [])
        return {
            "queue": queue_id, "name": name, "sla": sla,
            "waiting": len(waits), "longest_wait_s": round(max(waits), 1) if waits else 0.0,
            "in_progress": assigned.get(queue_id, 0), "agents": agents,
            "last_15_min": window_json(window(recent.get(queue_id, ()))),
            "today": window_json(today.get(queue_id, Tally())),
            "retired": retired,
        }

    figures = []
    needs = {queue_id: _needs(policy, queue_id) for queue_id in policy.queues}
    agents = _agents_by_needs(state, set(needs.values()))
    for queue_id, info in policy.queues.items():
        sla = {"answer_within_s": info.answer_within_s, "target_pct": info.target_pct}
        figures.append(entry(queue_id, info.name, sla, dict(agents[needs[queue_id]]), False))
    # A queue a newer policy version dropped or renamed still holds the contacts placed in it
    # before (they are routed on their plans): they must not vanish from the figures.
    for queue_id in sorted((set(waiting) | set(assigned) | set(today) | set(recent)) - set(policy.queues)):
        figures.append(entry(queue_id, f"{queue_id} (not in the active policy)",
                             {"answer_within_s": targets.get(queue_id), "target_pct": None},
                             {"available": 0, "busy": 0, "away": 0, "offline": 0}, True))
    return figures


def summary(figures: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    total = {"waiting": 0, "in_progress": 0}
    for queue in figures:
        total["waiting"] += int(queue["waiting"])
        total["in_progress"] += int(queue["in_progress"])
    return total

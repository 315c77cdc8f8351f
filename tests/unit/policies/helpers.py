"""Builders shared by the policy unit tests: small documents, contacts, agents, instants."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from policies.engine import CompiledPolicy, compile_policy
from policies.loader import document_from_data
from policies.schema import PolicyDocument
from policies.vocabulary import AgentProfile, AgentSnapshot, Channel, Presence

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = {"hours": {"mon-fri": "08:00-20:00", "sat": "09:00-12:00"}, "holidays": ["2026-10-01"],
         "special_days": {"2026-10-10": "08:00-20:00"}}


def at(local: str, zone: ZoneInfo = SHANGHAI) -> float:
    """'2026-11-23 10:00' in the bank's zone as epoch seconds (2026-11-23 is a Monday)."""
    return datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp()


MONDAY_10 = at("2026-11-23 10:00")
MONDAY_22 = at("2026-11-23 22:00")


def queue(qid: str, **extra: Any) -> dict[str, Any]:
    return {"id": qid, "sla": {"answer_within_s": 20, "target_pct": 80}, **extra}


def policy_data(rules: list[dict[str, Any]], queues: list[dict[str, Any]] | None = None,
                **extra: Any) -> dict[str, Any]:
    """A document: the given rules, then a catch-all to 'general' unless one is given."""
    if not any(not r.get("match") and "unless" not in r for r in rules):
        rules = [*rules, {"id": "catch_all", "queue": "general"}]
    named = list(queues) if queues is not None else [queue("general")]
    known = {q["id"] for q in named}
    for r in rules:
        if r["queue"] not in known:
            named.append(queue(r["queue"]))
            known.add(r["queue"])
    return {"queues": named, "rules": rules, **extra}


def document(rules: list[dict[str, Any]], queues: list[dict[str, Any]] | None = None,
             **extra: Any) -> PolicyDocument:
    return document_from_data(policy_data(rules, queues, **extra))


def compiled(rules: list[dict[str, Any]], queues: list[dict[str, Any]] | None = None,
             **extra: Any) -> CompiledPolicy:
    return compile_policy(document(rules, queues, **extra), 7)


def profile(agent_id: str, skills: Mapping[str, int] | None = None, languages: set[str] | None = None,
            channels: Mapping[Channel, int] | None = None, total_capacity: int = 1) -> AgentProfile:
    return AgentProfile(agent_id=agent_id, skills=dict(skills or {}),
                        languages=frozenset(languages or {"zh"}),
                        channels=dict(channels or {Channel.PHONE: 1}), total_capacity=total_capacity)


def snapshot(agent_id: str, skills: Mapping[str, int] | None = None, *, languages: set[str] | None = None,
             channels: Mapping[Channel, int] | None = None, total_capacity: int = 1,
             presence: Presence = Presence.AVAILABLE, load: Mapping[Channel, int] | None = None,
             pending_offers: int = 0, idle_since_s: float = 0.0, in_wrapup: bool = False) -> AgentSnapshot:
    return AgentSnapshot(
        profile=profile(agent_id, skills, languages, channels, total_capacity), presence=presence,
        load=dict(load or {}), pending_offers=pending_offers, idle_since_s=idle_since_s, in_wrapup=in_wrapup,
    )

"""Policy evaluation speed: the default policy and a generated 200-rule policy, one core.

The generated policy and contacts come from a seeded generator, so every run
measures the same work; contacts match rules all over the list, not rule 1.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from policies.engine import CompiledPolicy, compile_policy, evaluate
from policies.loader import document_from_data, load_default_policy
from policies.vocabulary import Channel, ContactFacts, Intent, Need, Segment

E = TypeVar("E")
BASE_NOW_S = 1_779_436_800.0  # a fixed Friday, 16:00 in Shanghai
SEED = 20_240_601
LANGUAGES = ("en", "ja", "ko")
# A bank hotline's rough mix: mostly phone and app, mostly mass-segment service enquiries.
CHANNEL_WEIGHTS = {Channel.PHONE: 50, Channel.APP: 25, Channel.WEBCHAT: 20, Channel.VIDEO: 5}
SEGMENT_WEIGHTS = {Segment.MASS: 70, Segment.WEALTH: 15, Segment.VIP: 8, Segment.CORPORATE: 7}
INTENT_WEIGHTS = {Intent.GENERAL: 25, Intent.SPEAK_TO_AGENT: 10, Intent.CREDIT_CARD: 20, Intent.LOAN: 10,
                  Intent.WEALTH: 10, Intent.COMPLAINT: 8, Intent.LOST_CARD: 10, Intent.FRAUD: 7}
SKILLS = {Intent.LOST_CARD: "fraud", Intent.FRAUD: "fraud", Intent.CREDIT_CARD: "credit_card",
          Intent.LOAN: "loan", Intent.WEALTH: "wealth", Intent.COMPLAINT: "complaints",
          Intent.SPEAK_TO_AGENT: "general", Intent.GENERAL: "general"}


def run_policy_bench(seconds: float = 3.0) -> dict[str, float | int]:
    """Evaluations per second; `policy_evals_per_s` is the 200-rule figure."""
    rng = random.Random(SEED)
    big = compile_policy(document_from_data(generated_policy(rng, 200)), 1)
    default = compile_policy(load_default_policy(), 1)
    contacts = generated_contacts(rng, 512)
    instants = [BASE_NOW_S + 611.0 * k for k in range(97)]  # spread over a day
    matched = [evaluate(big, c, instants[i % len(instants)]).rule_index for i, c in enumerate(contacts)]
    with_reasons = lambda p, c, t: len(evaluate(p, c, t).reasons)  # noqa: E731
    return {
        "policy_evals_per_s": round(_rate(big, contacts, instants, seconds * 0.45, evaluate)),
        "policy_evals_per_s_default": round(_rate(default, contacts, instants, seconds * 0.45, evaluate)),
        "policy_evals_per_s_with_reasons": round(_rate(big, contacts, instants, seconds * 0.1, with_reasons)),
        "policy_rules": len(big.rules),
        "policy_rules_default": len(default.rules),
        "mean_matched_rule_index": round(sum(matched) / len(matched), 1),
        "distinct_rules_matched": len(set(matched)),
    }


def _rate(
    policy: CompiledPolicy, contacts: Sequence[ContactFacts], instants: Sequence[float],
    seconds: float, call: Callable[[CompiledPolicy, ContactFacts, float], object],
) -> float:
    pairs = [(c, instants[i % len(instants)]) for i, c in enumerate(contacts)]
    done, started = 0, time.perf_counter()
    deadline = started + max(seconds, 0.01)
    while True:
        for contact, now_s in pairs:
            call(policy, contact, now_s)
        done += len(pairs)
        elapsed = time.perf_counter() - started
        if time.perf_counter() >= deadline:
            return done / elapsed


def generated_policy(rng: random.Random, rule_count: int) -> dict[str, Any]:
    queues = [{"id": f"q{k}", "sla": {"answer_within_s": 20 + k, "target_pct": 80},
               "max_wait_s": 300, "overflow_to": "general"} for k in range(12)]
    queues.append({"id": "general", "sla": {"answer_within_s": 30, "target_pct": 80}})
    rules = [_generated_rule(rng, i) for i in range(rule_count - 1)]
    rules.append({"id": "catch_all", "queue": "general", "require": [{"skill": "general"}]})
    return {
        "name": "generated", "business_hours": {"hours": {"mon-fri": "08:00-20:00", "sat-sun": "09:00-17:00"}},
        "defaults": {"require": [{"language": "contact", "hard": "unless_speaks_home_language"}]},
        "queues": queues, "rules": rules,
    }


def _generated_rule(rng: random.Random, i: int) -> dict[str, Any]:
    intents = rng.sample(list(Intent), rng.randint(1, 2))
    match: dict[str, Any] = {"channel": [c.value for c in rng.sample(list(Channel), rng.randint(1, 2))],
                             "intent": [x.value for x in intents]}
    extras: list[tuple[float, str, Callable[[], Any]]] = [
        (0.6, "segment", lambda: rng.choice(list(Segment)).value),
        (0.2, "language", lambda: [rng.choice(LANGUAGES)]),
        (0.15, "needs", lambda: [rng.choice(list(Need)).value]),
        (0.1, "tags", lambda: ["money_at_stake"]),
        (0.1, "repeat_count_min", lambda: rng.randint(2, 3)),
        (0.1, "business_hours", lambda: rng.choice(["open", "closed"])),
        (0.05, "time_of_day", lambda: "12:00-14:00"),
    ]
    for chance, key, make in extras:
        if rng.random() < chance:
            match[key] = make()
    steps = [{"after_s": 60, "relax": {"skill": SKILLS[intents[0]], "to": 1}},
             {"after_s": 120, "raise_priority": 20}, {"after_s": 240, "overflow": "general"}]
    return {"id": f"r{i}", "match": match, "queue": f"q{i % 12}", "priority": rng.randint(10, 500),
            "require": [{"skill": SKILLS[intents[0]], "min": 3}], "escalate": steps[: rng.randint(0, 3)]}


def generated_contacts(rng: random.Random, count: int) -> list[ContactFacts]:
    return [_generated_contact(rng, k) for k in range(count)]


def _generated_contact(rng: random.Random, k: int) -> ContactFacts:
    foreign = rng.random() < 0.15
    language = rng.choice(LANGUAGES) if foreign else "zh"
    speaks = frozenset({language} | ({"zh"} if not foreign or rng.random() < 0.3 else set()))
    needs = frozenset({rng.choice(list(Need))}) if rng.random() < 0.15 else frozenset()
    return ContactFacts(
        contact_id=f"c{k}", channel=_pick(rng, CHANNEL_WEIGHTS), segment=_pick(rng, SEGMENT_WEIGHTS),
        language=language, languages=speaks, needs=needs, intent=_pick(rng, INTENT_WEIGHTS),
        repeat_count=rng.choice((1, 1, 1, 2, 3)),
        tags=frozenset({"money_at_stake"}) if rng.random() < 0.1 else frozenset(),
        customer_id=f"cust{k}", dedicated_agent=f"a{k % 7}" if rng.random() < 0.2 else None,
    )


def _pick(rng: random.Random, weights: dict[E, int]) -> E:
    return rng.choices(list(weights), weights=list(weights.values()))[0]

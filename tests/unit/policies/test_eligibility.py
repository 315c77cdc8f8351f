from __future__ import annotations

from dataclasses import replace

import pytest

from policies.eligibility import busy_ratio, ineligibility, partition, rank, skill_score
from policies.plan import Requirement, RequirementKind
from policies.vocabulary import AgentSnapshot, Channel, ContactFacts, Presence, Strategy
from tests.unit.policies.helpers import snapshot

SKILL, LANG = RequirementKind.SKILL, RequirementKind.LANGUAGE
CHAN, AGENT = RequirementKind.CHANNEL, RequirementKind.AGENT
PHONE_CALL = ContactFacts("c1", Channel.PHONE, dedicated_agent="d1", last_agent="l1")
CHAT = ContactFacts("c2", Channel.WEBCHAT)
FRAUD3 = Requirement(SKILL, "fraud", 3, True)
JA = Requirement(LANG, "ja", 0, True)


@pytest.mark.parametrize(
    ("agent", "contact", "requirements", "reasons"),
    [
        (snapshot("a", {"fraud": 3}), PHONE_CALL, (FRAUD3,), ()),
        (snapshot("a", {"fraud": 3}, presence=Presence.AWAY), PHONE_CALL, (FRAUD3,), ("presence is away",)),
        (snapshot("a", presence=Presence.OFFLINE), PHONE_CALL, (), ("presence is offline",)),
        (snapshot("a", presence=Presence.DISCONNECTED), PHONE_CALL, (), ("presence is disconnected",)),
        (snapshot("a", in_wrapup=True), PHONE_CALL, (), ("in wrap-up",)),
        (snapshot("a"), CHAT, (), ("does not serve channel webchat",)),
        (snapshot("a", load={Channel.PHONE: 1}), PHONE_CALL, (), ("no capacity on phone (1/1 busy)",)),
        (snapshot("a", pending_offers=1), PHONE_CALL, (), ("no capacity on phone (1/1 busy)",)),
        (snapshot("a", channels={Channel.WEBCHAT: 3}, total_capacity=3, load={Channel.WEBCHAT: 2}), CHAT, (), ()),
        (snapshot("a", channels={Channel.WEBCHAT: 3}, load={Channel.WEBCHAT: 1}), CHAT, (),
         ("no capacity in total (1/1 busy)",)),
        (snapshot("a", channels={Channel.WEBCHAT: 3, Channel.PHONE: 1}, total_capacity=2,
                  load={Channel.WEBCHAT: 2}), PHONE_CALL, (), ("no capacity in total (2/2 busy)",)),
        (snapshot("a"), PHONE_CALL, (FRAUD3,), ("missing skill fraud",)),
        (snapshot("a", {"fraud": 2}), PHONE_CALL, (FRAUD3,), ("skill fraud is 2, below 3",)),
        (snapshot("a", {"fraud": 5}), PHONE_CALL, (FRAUD3, JA), ("does not speak ja",)),
        (snapshot("a", {"fraud": 5}, languages={"ja", "zh"}), PHONE_CALL, (FRAUD3, JA), ()),
        (snapshot("a"), PHONE_CALL, (Requirement(CHAN, "video", 0, True),), ("does not serve channel video",)),
        (snapshot("a"), ContactFacts("c3", Channel.VIDEO), (Requirement(CHAN, "video", 0, True),),
         ("does not serve channel video",)),
        (snapshot("a"), PHONE_CALL, (Requirement(AGENT, "d1"),), ("only agent d1 may take it now",)),
        (snapshot("d1"), PHONE_CALL, (Requirement(AGENT, "d1"),), ()),
        (snapshot("a", presence=Presence.AWAY, load={Channel.PHONE: 1}), PHONE_CALL, (FRAUD3, JA),
         ("presence is away", "no capacity on phone (1/1 busy)", "missing skill fraud", "does not speak ja")),
    ],
)
def test_ineligibility_reasons(agent: AgentSnapshot, contact: ContactFacts, requirements: tuple[Requirement, ...],
                               reasons: tuple[str, ...]) -> None:
    assert ineligibility(agent, requirements, contact) == reasons


def test_partition_splits_with_reasons() -> None:
    agents = [snapshot("ok", {"fraud": 4}), snapshot("away", {"fraud": 4}, presence=Presence.AWAY),
              snapshot("weak", {"fraud": 1})]
    split = partition(agents, (FRAUD3,), PHONE_CALL)
    assert [a.agent_id for a in split.eligible] == ["ok"]
    assert split.ineligible == {"away": ("presence is away",), "weak": ("skill fraud is 1, below 3",)}


def _ids(agents: list[AgentSnapshot]) -> list[str]:
    return [a.agent_id for a in agents]


SKILLED = [
    snapshot("b", {"fraud": 3, "loan": 5}, idle_since_s=100),
    snapshot("a", {"fraud": 5, "loan": 3}, idle_since_s=300),
    snapshot("c", {"fraud": 5, "loan": 4}, idle_since_s=200),
    snapshot("d", {"fraud": 4, "loan": 4}, idle_since_s=50),
]
TWO_SKILLS = (Requirement(SKILL, "fraud", 3), Requirement(SKILL, "loan", 3), JA)


@pytest.mark.parametrize(
    ("strategy", "order"),
    [
        (Strategy.LONGEST_IDLE, ["d", "b", "c", "a"]),
        (Strategy.MOST_SKILLED, ["c", "b", "a", "d"]),  # sums 9, 8 (max 5, idle 100), 8 (max 5, idle 300), 8 (max 4)
        (Strategy.DEDICATED_FIRST, ["d", "b", "c", "a"]),  # no dedicated agent among them: longest idle
    ],
)
def test_rank_orders_by_strategy(strategy: Strategy, order: list[str]) -> None:
    assert _ids(rank(SKILLED, TWO_SKILLS, strategy, PHONE_CALL, 1000)) == order


def test_most_skilled_breaks_equal_sum_by_max() -> None:
    assert skill_score(SKILLED[0], TWO_SKILLS) == (8, 5)
    assert skill_score(SKILLED[3], TWO_SKILLS) == (8, 4)


def test_least_busy_uses_load_over_capacity() -> None:
    agents = [
        snapshot("half", channels={Channel.WEBCHAT: 4}, total_capacity=4, load={Channel.WEBCHAT: 2}),
        snapshot("third", channels={Channel.WEBCHAT: 3}, total_capacity=3, load={Channel.WEBCHAT: 1}),
        snapshot("free", channels={Channel.WEBCHAT: 2}, total_capacity=2, idle_since_s=500),
        snapshot("free_longer", channels={Channel.WEBCHAT: 2}, total_capacity=2, idle_since_s=400),
        snapshot("offer", channels={Channel.WEBCHAT: 3}, total_capacity=3, pending_offers=2),
    ]
    assert busy_ratio(agents[0]) == 0.5 and busy_ratio(agents[4]) == pytest.approx(2 / 3)
    assert _ids(rank(agents, (), Strategy.LEAST_BUSY, CHAT, 1000)) == ["free_longer", "free", "third", "half", "offer"]


@pytest.mark.parametrize(
    ("strategy", "first"),
    [(Strategy.DEDICATED_FIRST, "d1"), (Strategy.LAST_AGENT_FIRST, "l1"), (Strategy.LONGEST_IDLE, "x")],
)
def test_dedicated_and_last_agent_first(strategy: Strategy, first: str) -> None:
    agents = [snapshot("l1", idle_since_s=30), snapshot("d1", idle_since_s=20), snapshot("x", idle_since_s=10)]
    ranked = _ids(rank(agents, (), strategy, PHONE_CALL, 100))
    assert ranked[0] == first
    assert sorted(ranked) == ["d1", "l1", "x"]


def test_ties_fall_back_to_agent_id() -> None:
    agents = [snapshot(i, {"fraud": 3}, idle_since_s=10) for i in ("c", "a", "b")]
    for strategy in Strategy:
        assert _ids(rank(agents, (FRAUD3,), strategy, replace(PHONE_CALL, dedicated_agent=None,
                                                              last_agent=None), 50)) == ["a", "b", "c"]


def test_rank_does_not_filter_or_mutate() -> None:
    agents = [snapshot("b", idle_since_s=2), snapshot("a", idle_since_s=1, presence=Presence.AWAY)]
    assert _ids(rank(agents, (FRAUD3,), Strategy.LONGEST_IDLE, PHONE_CALL, 5)) == ["a", "b"]
    assert _ids(agents) == ["b", "a"]

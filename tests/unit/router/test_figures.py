"""Live queue figures from the router state (pure: the clock and the zone are arguments)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from router import events as ev
from router.figures import queue_figures
from router.state import BUCKET_S, KEEP_BUCKETS, RECENT_S, Outcome, RouterState
from tests.unit.router.builders import POLICY, Log

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 9, 22, 10, 0, tzinfo=SHANGHAI).timestamp()
MIDNIGHT = datetime(2026, 9, 22, 0, 0, tzinfo=SHANGHAI).timestamp()


def figures_for(state: RouterState, queue_id: str, now_s: float = NOW) -> dict[str, object]:
    return next(q for q in queue_figures(state, POLICY, now_s, SHANGHAI) if q["queue"] == queue_id)


def test_today_starts_at_local_midnight_and_the_window_is_the_last_15_minutes() -> None:
    state = RouterState()
    for outcome in [
        Outcome(MIDNIGHT - 60, "vip", True, 5.0, True),  # yesterday, local time
        Outcome(MIDNIGHT + 300, "vip", True, 30.0, False),
        Outcome(NOW - 1200, "vip", False, 2.0, False),  # an abandon under 5 s: not counted
        Outcome(NOW - 600, "vip", False, 40.0, False),
        Outcome(NOW - 60, "vip", True, 10.0, True),
        Outcome(NOW - 30, "urgent", True, 1.0, True),
    ]:
        state.record(outcome)
    vip = figures_for(state, "vip")
    assert vip["today"] == {"answered": 2, "abandoned": 1, "short_abandons_excluded": 1, "service_level_pct": 33.3,
                            "average_speed_of_answer_s": 20.0, "abandonment_rate_pct": 33.3}
    assert vip["last_15_min"] == {"answered": 1, "abandoned": 1, "short_abandons_excluded": 0,
                                  "service_level_pct": 50.0, "average_speed_of_answer_s": 10.0,
                                  "abandonment_rate_pct": 50.0}


def test_a_busy_day_is_counted_whole() -> None:
    state = RouterState()
    step_s, at = 0.15, MIDNIGHT - 6 * 3600  # from 18:00 yesterday, six and a half a second
    while at < NOW:
        state.record(Outcome(at, "vip", True, 3.0, True))
        at += step_s
    today = figures_for(state, "vip")["today"]
    assert today["answered"] == round((NOW - MIDNIGHT) / step_s)  # 240,000: a count cap cut it at 200,000


def test_memory_for_the_figures_stays_bounded_by_time() -> None:
    state = RouterState()
    step_s, at = 20.0, MIDNIGHT - 5 * 86_400
    while at < NOW:
        state.record(Outcome(at, "vip" if int(at) % 3 else "urgent", True, 3.0, True))
        at += step_s
    assert len(state.tallies) <= 2 * (KEEP_BUCKETS + 1)  # two queues
    assert len(state.outcomes) <= RECENT_S / step_s + 1
    assert min(b for b, _ in state.tallies) * BUCKET_S < MIDNIGHT  # the start of today is kept
    assert figures_for(state, "vip")["today"]["answered"] + figures_for(state, "urgent")["today"]["answered"] == \
        round((NOW - MIDNIGHT) / step_s)


def test_an_agent_whose_desk_dropped_is_not_counted_available_in_its_grace() -> None:
    log = Log()
    log.agent("here")
    log.agent("dropped")
    log.add("agent-default:dropped", ev.AGENT_DISCONNECTED, {"agent_id": "dropped", "at_s": NOW})
    counted = [q["agents"] for q in queue_figures(log.state, POLICY, NOW, SHANGHAI)
               if q["agents"]["available"] or q["agents"]["away"]]
    assert counted and all(agents["available"] == 1 and agents["away"] == 1 for agents in counted)


def test_contacts_in_a_queue_the_active_policy_dropped_still_count() -> None:
    """A new policy version without the queue: its waiting contacts are still waiting (they
    vanished from the figures and totals: found by an audit)."""
    from router.decide import place
    from router.figures import summary
    from policies.vocabulary import Intent

    log = Log()
    for contact_id in ("c1", "c2"):
        log.contact(contact_id, intent=Intent.LOAN)
        log.commit(place(log.state, log.state.contacts[contact_id], POLICY, NOW - 30))
    queue_id = log.state.contacts["c1"].queue_id
    without = replace(POLICY, queues={k: v for k, v in POLICY.queues.items() if k != queue_id})
    figures = queue_figures(log.state, without, NOW, SHANGHAI)
    [retired] = [q for q in figures if q["queue"] == queue_id]
    assert (retired["waiting"], retired["retired"], retired["longest_wait_s"]) == (2, True, 30.0)
    assert retired["sla"]["answer_within_s"] == POLICY.queues[queue_id].answer_within_s
    assert summary(figures)["waiting"] == 2
    assert all(not q["retired"] for q in figures if q["queue"] != queue_id)


def test_an_abandon_dated_days_ahead_by_a_gateway_clock_does_not_empty_the_figures() -> None:
    # Before: the wait came from the gateway's clock alone; a hang-up dated three days ahead
    # made an outcome "in three days", and everything older than a day before it was dropped.
    from router.decide import place

    log = Log()
    log.add("contact-default:c0", ev.CONTACT_ARRIVED, _arrival("c0"), recorded_at_s=NOW - 120)
    log.commit(place(log.state, log.state.contacts["c0"], POLICY, NOW - 120))
    queue = log.state.contacts["c0"].queue_id
    log.state.record(Outcome(NOW - 100, queue, True, 20.0, True))  # answered earlier today
    log.add("contact-default:c0", ev.CUSTOMER_ABANDONED, {"contact_id": "c0", "waited_s": 3 * 86_400.0},
            recorded_at_s=NOW - 90)
    today = figures_for(log.state, queue)["today"]
    assert (today["answered"], today["abandoned"]) == (1, 1)
    # Counted by when it was received (give or take the allowance for the two clocks).
    assert max(o.at_s for o in log.state.outcomes) <= NOW - 90 + 60


def _arrival(contact_id: str) -> dict[str, object]:
    from channels.events import facts_to_data
    from policies.vocabulary import Channel, ContactFacts

    return {**facts_to_data(ContactFacts(contact_id=contact_id, channel=Channel.PHONE)),
            "occurred_at": "2026-09-22T09:58:00+08:00"}

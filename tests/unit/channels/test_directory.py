"""The customer directory and the facts the policy engine sees."""

from __future__ import annotations

from datetime import date

import pytest

from channels.directory import (
    NO_UNKNOWN_NUMBERS_TAG,
    CustomerDirectory,
    CustomerKey,
    CustomerProfile,
    Disability,
    GatewayHints,
    age_years,
    facts_for,
)
from policies.vocabulary import Channel, Intent, Need, Segment

from .samples import VIP

DAY = date(2025, 3, 14)


@pytest.mark.parametrize(
    ("born", "on", "years"),
    [
        (date(1965, 3, 14), date(2025, 3, 14), 60),
        (date(1965, 3, 15), date(2025, 3, 14), 59),
        (date(1964, 2, 29), date(2024, 2, 28), 59),
        (date(1964, 2, 29), date(2024, 2, 29), 60),
        (date(1964, 2, 29), date(2025, 2, 28), 60),  # no 29th in 2025: the birthday counts from 1 March
        (date(1964, 2, 29), date(2025, 3, 1), 61),
    ],
)
def test_age_in_whole_years(born: date, on: date, years: int) -> None:
    assert age_years(born, on) == years


FACTS_TABLE = [
    # (profile, hints, language, languages, needs, segment)
    (None, GatewayHints(), "zh", {"zh"}, set(), Segment.MASS),
    (None, GatewayHints(locale_language="ja"), "ja", {"ja"}, {Need.FOREIGN}, Segment.MASS),
    (None, GatewayHints(dialled_line="english"), "en", {"en"}, {Need.FOREIGN}, Segment.MASS),
    (None, GatewayHints(dialled_line="english", chosen_language="zh"), "zh", {"zh"}, set(), Segment.MASS),
    (None, GatewayHints(dialled_line="elderly"), "zh", {"zh"}, {Need.ELDERLY}, Segment.MASS),
    (None, GatewayHints(sign_language="csl"), "zh", {"zh"}, {Need.DEAF}, Segment.MASS),
    (VIP, GatewayHints(locale_language="en"), "zh", {"zh", "en"}, set(), Segment.VIP),
    (VIP, GatewayHints(chosen_language="en"), "en", {"zh", "en"}, set(), Segment.VIP),
    (
        CustomerProfile("K1", segment=Segment.WEALTH, preferred_language="ko", languages=frozenset({"ko"})),
        GatewayHints(),
        "ko",
        {"ko"},
        {Need.FOREIGN},
        Segment.WEALTH,
    ),
    (
        CustomerProfile("B1", disabilities=frozenset({Disability.BLIND}), birth_date=date(1950, 1, 1)),
        GatewayHints(),
        "zh",
        {"zh"},
        {Need.BLIND, Need.ELDERLY},
        Segment.MASS,
    ),
]


@pytest.mark.parametrize(("profile", "hints", "language", "languages", "needs", "segment"), FACTS_TABLE)
def test_facts_from_profile_and_hints(
    profile: CustomerProfile | None,
    hints: GatewayHints,
    language: str,
    languages: set[str],
    needs: set[Need],
    segment: Segment,
) -> None:
    facts = facts_for("c", Channel.PHONE, profile, hints, intent=Intent.LOAN, repeat_count=2, on_date=DAY)
    assert (facts.language, facts.languages, facts.needs, facts.segment) == (
        language,
        frozenset(languages),
        frozenset(needs),
        segment,
    )
    assert (facts.intent, facts.repeat_count, facts.channel) == (Intent.LOAN, 2, Channel.PHONE)


def test_unknown_customer_keeps_the_gateways_customer_id_only() -> None:
    facts = facts_for(
        "c", Channel.APP, None, GatewayHints(customer_id="C5"), intent=Intent.GENERAL, repeat_count=1, on_date=DAY
    )
    assert (facts.customer_id, facts.dedicated_agent, facts.tags, facts.callback_windows) == (
        "C5",
        None,
        frozenset(),
        (),
    )


def test_preferences_become_facts() -> None:
    facts = facts_for("c", Channel.PHONE, VIP, GatewayHints(), intent=Intent.GENERAL, repeat_count=1, on_date=DAY)
    assert NO_UNKNOWN_NUMBERS_TAG in facts.tags and facts.callback_windows == VIP.callback_windows
    assert facts.dedicated_agent == "a-017"


def test_directory_finds_by_customer_id_first_then_by_unique_phone() -> None:
    husband = CustomerProfile("H1", phone_numbers=("+8613800000001", "+862150000000"))
    wife = CustomerProfile("W1", phone_numbers=("+8613800000002", "+862150000000"))
    directory = CustomerDirectory([husband, wife])
    assert directory.find(CustomerKey("W1", "+8613800000001")) is wife
    assert directory.find(CustomerKey(None, "+8613800000001")) is husband
    assert directory.find(CustomerKey(None, "+862150000000")) is None  # shared home phone: nobody
    assert directory.find(CustomerKey("nobody", "+8613800000001")) is None
    assert directory.find(CustomerKey()) is None


def test_directory_replaces_a_profile_and_its_numbers() -> None:
    directory = CustomerDirectory([CustomerProfile("C1", phone_numbers=("+8613800000001",))])
    directory.put(CustomerProfile("C1", phone_numbers=("+8613800000009",), segment=Segment.VIP))
    assert len(directory) == 1
    assert directory.find(CustomerKey(None, "+8613800000001")) is None
    found = directory.find(CustomerKey(None, "+8613800000009"))
    assert found is not None and found.segment is Segment.VIP


def test_profile_data_is_json_ready() -> None:
    data = VIP.to_data()
    assert data["birth_date"] == "1980-05-01" and data["languages"] == ["en", "zh"]
    assert data["callback_windows"] == [{"start_min": 900, "end_min": 1440}]

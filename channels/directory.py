"""The customer directory: who a customer is, and what that means for routing.

`CustomerProfile` is what the bank knows (imported by an admin, see
`channels.customer_import`); `GatewayHints` is what the gateway said about this
contact (the elderly line was dialled, the sign-language desk was used, English
was chosen in the IVR). `facts_for` combines both into the `ContactFacts` the
policy engine evaluates. Pure: the date used for "60+" is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from policies.vocabulary import HOME_LANGUAGE, CallbackWindow, Channel, ContactFacts, Intent, Need, Segment

ELDERLY_AGE_YEARS: Final = 60
ELDERLY_LINE: Final = "elderly"
ENGLISH_LINE: Final = "english"
NO_UNKNOWN_NUMBERS_TAG: Final = "pref:no_calls_from_unknown_numbers"


class Disability(StrEnum):
    DEAF = "deaf"  # deaf or hard of hearing
    BLIND = "blind"


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    customer_id: str
    phone_numbers: tuple[str, ...] = ()
    segment: Segment = Segment.MASS
    birth_date: date | None = None
    disabilities: frozenset[Disability] = frozenset()
    preferred_language: str | None = None
    languages: frozenset[str] = frozenset()  # every language spoken, preferred included
    sign_language: str | None = None  # ISO 639-3, e.g. csl
    callback_windows: tuple[CallbackWindow, ...] = ()
    no_calls_from_unknown_numbers: bool = False
    dedicated_agent: str | None = None
    tags: frozenset[str] = frozenset()

    def to_data(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "phone_numbers": list(self.phone_numbers),
            "segment": self.segment.value,
            "birth_date": None if self.birth_date is None else self.birth_date.isoformat(),
            "disabilities": sorted(d.value for d in self.disabilities),
            "preferred_language": self.preferred_language,
            "languages": sorted(self.languages),
            "sign_language": self.sign_language,
            "callback_windows": [{"start_min": w.start_min, "end_min": w.end_min} for w in self.callback_windows],
            "no_calls_from_unknown_numbers": self.no_calls_from_unknown_numbers,
            "dedicated_agent": self.dedicated_agent,
            "tags": sorted(self.tags),
        }


@dataclass(frozen=True, slots=True)
class GatewayHints:
    """What the gateway told us about this contact, beyond the customer's profile."""

    customer_id: str | None = None  # logged-in or IVR-verified customer number
    dialled_line: str | None = None  # main | elderly | english
    chosen_language: str | None = None  # picked by the customer (IVR): wins over the profile
    locale_language: str | None = None  # browser or phone locale: a weak default
    sign_language: str | None = None  # came in through the sign-language desk


@dataclass(frozen=True, slots=True)
class CustomerKey:
    """How to look a contact's customer up: by customer number first, else by phone."""

    customer_id: str | None = None
    phone_number: str | None = None


class CustomerDirectory:
    """An in-memory index of profiles by customer id and by phone number (no I/O).

    A phone number shared by two customers identifies neither: guessing would give
    one customer's dedicated agent or VIP treatment to the other.
    """

    def __init__(self, profiles: Iterable[CustomerProfile] = ()) -> None:
        self._by_id: dict[str, CustomerProfile] = {}
        self._by_phone: dict[str, set[str]] = {}
        for profile in profiles:
            self.put(profile)

    def __len__(self) -> int:
        return len(self._by_id)

    def put(self, profile: CustomerProfile) -> None:
        """Add or replace a profile (the latest import wins)."""
        old = self._by_id.get(profile.customer_id)
        for number in old.phone_numbers if old else ():
            self._by_phone[number].discard(profile.customer_id)
        self._by_id[profile.customer_id] = profile
        for number in profile.phone_numbers:
            self._by_phone.setdefault(number, set()).add(profile.customer_id)

    def get(self, customer_id: str) -> CustomerProfile | None:
        return self._by_id.get(customer_id)

    def find(self, key: CustomerKey) -> CustomerProfile | None:
        if key.customer_id is not None:
            return self._by_id.get(key.customer_id)
        ids = self._by_phone.get(key.phone_number or "", set())
        return self._by_id[next(iter(ids))] if len(ids) == 1 else None


def age_years(birth_date: date, on_date: date) -> int:
    """Whole years of age on a date (a 29 February birthday counts from 1 March)."""
    before_birthday = (on_date.month, on_date.day) < (birth_date.month, birth_date.day)
    return on_date.year - birth_date.year - int(before_birthday)


def is_elderly(profile: CustomerProfile | None, hints: GatewayHints, on_date: date) -> bool:
    """On the elderly line, or 60 or over on the contact's date."""
    if hints.dialled_line == ELDERLY_LINE:
        return True
    born = profile.birth_date if profile else None
    return born is not None and age_years(born, on_date) >= ELDERLY_AGE_YEARS


def serving_language(profile: CustomerProfile | None, hints: GatewayHints) -> str:
    """The language to serve this contact in.

    Order: a choice made for this contact (IVR language, the English line), then the
    profile's preference, then the gateway's locale, then the bank's home language.
    """
    if hints.chosen_language:
        return hints.chosen_language
    if hints.dialled_line == ENGLISH_LINE:
        return "en"
    if profile is not None and profile.preferred_language:
        return profile.preferred_language
    return hints.locale_language or HOME_LANGUAGE


def spoken_languages(profile: CustomerProfile | None, language: str) -> frozenset[str]:
    if profile is None:
        return frozenset({language})
    preferred = {profile.preferred_language} if profile.preferred_language else set()
    return frozenset({language, *preferred, *profile.languages})


def needs_for(
    profile: CustomerProfile | None, hints: GatewayHints, languages: frozenset[str], on_date: date
) -> frozenset[Need]:
    disabilities = profile.disabilities if profile else frozenset()
    needs = set()
    if is_elderly(profile, hints, on_date):
        needs.add(Need.ELDERLY)
    if Disability.DEAF in disabilities or hints.sign_language:
        needs.add(Need.DEAF)
    if Disability.BLIND in disabilities:
        needs.add(Need.BLIND)
    if HOME_LANGUAGE not in languages:
        needs.add(Need.FOREIGN)
    return frozenset(needs)


def _tags(profile: CustomerProfile | None) -> frozenset[str]:
    if profile is None:
        return frozenset()
    extra = {NO_UNKNOWN_NUMBERS_TAG} if profile.no_calls_from_unknown_numbers else set()
    return profile.tags | extra


def facts_for(
    contact_id: str,
    channel: Channel,
    profile: CustomerProfile | None,
    hints: GatewayHints,
    *,
    intent: Intent,
    repeat_count: int,
    on_date: date,
) -> ContactFacts:
    """The policy engine's view of a contact. An unknown customer is mass segment,
    served in the channel's language, with only the gateway's hints as needs."""
    language = serving_language(profile, hints)
    languages = spoken_languages(profile, language)
    return ContactFacts(
        contact_id=contact_id,
        channel=channel,
        segment=profile.segment if profile else Segment.MASS,
        language=language,
        languages=languages,
        needs=needs_for(profile, hints, languages, on_date),
        intent=intent,
        repeat_count=repeat_count,
        customer_id=profile.customer_id if profile else hints.customer_id,
        dedicated_agent=profile.dedicated_agent if profile else None,
        tags=_tags(profile),
        sign_language=hints.sign_language or (profile.sign_language if profile else None),
        callback_windows=profile.callback_windows if profile else (),
        dialled_line=hints.dialled_line,
    )

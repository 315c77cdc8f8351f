"""The routing vocabulary shared by channels, policies and the router.

Pure data: enums for the closed sets the brief names, and the frozen views of a
contact and of an agent that the policy engine and the routing core evaluate.
Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    WEBCHAT = "webchat"
    VIDEO = "video"
    APP = "app"


class Segment(StrEnum):
    MASS = "mass"
    WEALTH = "wealth"
    VIP = "vip"  # private banking / high-net-worth card holders
    CORPORATE = "corporate"


class Need(StrEnum):
    ELDERLY = "elderly"  # 60+ or came in on the elderly line
    DEAF = "deaf"  # deaf or hard of hearing: needs an agent who signs
    BLIND = "blind"  # needs a voice-capable agent
    FOREIGN = "foreign"  # does not speak the bank's home language


class Intent(StrEnum):
    LOST_CARD = "lost_card"
    FRAUD = "fraud"  # suspected fraud or a telecom scam in progress
    CREDIT_CARD = "credit_card"
    LOAN = "loan"
    WEALTH = "wealth"
    COMPLAINT = "complaint"
    SPEAK_TO_AGENT = "speak_to_agent"
    GENERAL = "general"


class Presence(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    AWAY = "away"
    DISCONNECTED = "disconnected"  # websocket dropped, inside or past the grace period


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"
    MOST_SKILLED = "most_skilled"
    LEAST_BUSY = "least_busy"
    DEDICATED_FIRST = "dedicated_first"  # the customer's dedicated agent, else longest idle
    LAST_AGENT_FIRST = "last_agent_first"  # the agent who last served this customer, else longest idle


HOME_LANGUAGE = "zh"


@dataclass(frozen=True, slots=True)
class CallbackWindow:
    """A customer's preferred hours for a callback, in the bank's local time (minutes after midnight)."""

    start_min: int
    end_min: int


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What the policy engine knows about a contact when it evaluates a policy.

    `language` is the language this contact should be served in; `languages` is
    every language the customer speaks (so a Japanese customer who also speaks
    Chinese does not need a hard Japanese requirement).
    """

    contact_id: str
    channel: Channel
    segment: Segment = Segment.MASS
    language: str = HOME_LANGUAGE
    languages: frozenset[str] = frozenset({HOME_LANGUAGE})
    needs: frozenset[Need] = frozenset()
    intent: Intent = Intent.GENERAL
    repeat_count: int = 1  # contacts about this intent in the last 7 days, this one included
    customer_id: str | None = None
    dedicated_agent: str | None = None
    last_agent: str | None = None
    tags: frozenset[str] = frozenset()
    sign_language: str | None = None  # e.g. "csl" (Chinese Sign Language)
    callback_windows: tuple[CallbackWindow, ...] = ()
    dialled_line: str | None = None  # e.g. "main", "elderly", "english"


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """An agent as configured by an admin: what the agent can do, not what it is doing."""

    agent_id: str
    name: str = ""
    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> proficiency 1..5
    languages: frozenset[str] = frozenset({HOME_LANGUAGE})
    channels: Mapping[Channel, int] = field(default_factory=dict)  # channel -> concurrent capacity
    total_capacity: int = 1
    team: str | None = None
    supervisor: str | None = None


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """An agent at one instant, as the routing core sees it (derived from the log)."""

    profile: AgentProfile
    presence: Presence = Presence.OFFLINE
    load: Mapping[Channel, int] = field(default_factory=dict)  # active contacts per channel
    pending_offers: int = 0
    idle_since_s: float = 0.0  # epoch seconds when the agent last became free
    in_wrapup: bool = False
    missed_offers: int = 0

    @property
    def agent_id(self) -> str:
        return self.profile.agent_id

    @property
    def total_load(self) -> int:
        return sum(self.load.values()) + self.pending_offers

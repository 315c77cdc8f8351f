"""How agent events change an agent's state (pure; RouterState.refresh re-indexes after)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from policies.vocabulary import AgentProfile, Channel, Presence

from . import events as ev

if TYPE_CHECKING:
    from .state import AgentState, RouterState

Data = Mapping[str, Any]


def profile_from_data(data: Data, old: AgentProfile | None = None) -> AgentProfile:
    """A profile from AgentRegistered data, or `old` with AgentUpdated's changed fields."""

    def pick(name: str, default: Any, *, nullable: bool = False) -> Any:
        # A null where the field cannot be empty (stored before the API refused it) keeps the
        # old value: the log must replay whatever it holds.
        if name in data and (nullable or data[name] is not None):
            return data[name]
        return getattr(old, name) if old is not None else default

    channels = pick("channels", {})
    return AgentProfile(
        agent_id=data.get("agent_id") or (old.agent_id if old else ""),
        name=pick("name", ""),
        skills={str(k): int(v) for k, v in dict(pick("skills", {})).items()},
        languages=frozenset(pick("languages", ())),
        channels={Channel(k): int(v) for k, v in dict(channels).items()},
        total_capacity=int(pick("total_capacity", 1)),
        team=pick("team", None, nullable=True),
        supervisor=pick("supervisor", None, nullable=True),
    )


def _registered(state: RouterState, agent: AgentState, data: Data) -> None:
    old = agent.profile
    agent.profile = profile_from_data(data)
    state.index_profile(agent, old)


def _updated(state: RouterState, agent: AgentState, data: Data) -> None:
    old = agent.profile
    agent.profile = profile_from_data(data, old)
    state.index_profile(agent, old)
    # Offers already made were decided on the old profile: the round looks at those contacts
    # again, and withdraws an offer the agent can no longer take (`commands.reactions`).
    state.touched_contacts.update(offer.contact_id for offer in agent.offers.values())


def _token(state: RouterState, agent: AgentState, data: Data) -> None:
    if agent.token_sha256 is not None:
        state.tokens.pop(agent.token_sha256, None)  # a new token replaces the old one
    agent.token_sha256 = data["token_sha256"]
    state.tokens[data["token_sha256"]] = agent.agent_id


def _connected(state: RouterState, agent: AgentState, data: Data) -> None:
    agent.connected = True
    agent.disconnected_at_s = None
    agent.desk_instance = data.get("instance")


def _disconnected(state: RouterState, agent: AgentState, data: Data) -> None:
    instance = data.get("instance")
    if agent.connected and instance is not None and agent.desk_instance not in (None, instance):
        # Why: one desk per agent, the newest wins. A desk opened on another instance since
        # then is the agent's desk now; the older one closing (it was told it was replaced)
        # does not disconnect the agent. The log's order decides which desk is newer.
        return
    agent.connected = False
    agent.disconnected_at_s = float(data["at_s"])
    agent.desk_instance = None


def _state_changed(state: RouterState, agent: AgentState, data: Data) -> None:
    presence = Presence(data["state"])
    if presence is Presence.AVAILABLE and agent.presence is not Presence.AVAILABLE:
        agent.idle_since_s = float(data["at_s"])
        agent.missed_in_row = 0
    agent.presence = presence


def _reserved(state: RouterState, agent: AgentState, data: Data) -> None:
    offer = state.offers.get(data["offer_id"])
    if offer is not None:
        agent.offers[offer.offer_id] = offer
    else:  # the contact's OfferMade is in the same transaction; keep the hold regardless of order
        from .state import Offer

        agent.offers[data["offer_id"]] = Offer(data["offer_id"], data["contact_id"], agent.agent_id,
                                               Channel(data["channel"]), float(data["at_s"]), float(data["at_s"]),
                                               agent.profile)


def _released(state: RouterState, agent: AgentState, data: Data) -> None:
    agent.offers.pop(data["offer_id"], None)
    if data.get("reason") == "expired":  # not answered at all
        agent.missed_in_row += 1
    elif data.get("reason") == "rejected":  # an answer: the agent is at the desk
        agent.missed_in_row = 0


def _engaged(state: RouterState, agent: AgentState, data: Data) -> None:
    agent.offers.pop(data.get("offer_id", ""), None)
    agent.contacts[data["contact_id"]] = Channel(data["channel"])
    agent.missed_in_row = 0


def _freed(state: RouterState, agent: AgentState, data: Data) -> None:
    agent.contacts.pop(data["contact_id"], None)
    if not agent.contacts and agent.wrapup_until_s is None:
        agent.idle_since_s = float(data["at_s"])


def _wrapup_started(state: RouterState, agent: AgentState, data: Data) -> None:
    # A second completion during a wrap-up never cuts the first contact's wrap-up short.
    agent.wrapup_until_s = max(agent.wrapup_until_s or float("-inf"), float(data["until_s"]))


def _wrapup_ended(state: RouterState, agent: AgentState, data: Data) -> None:
    agent.wrapup_until_s = None
    if not agent.contacts:
        agent.idle_since_s = float(data["at_s"])


AGENT_HANDLERS: dict[str, Callable[[RouterState, AgentState, Data], None]] = {
    ev.AGENT_REGISTERED: _registered,
    ev.AGENT_UPDATED: _updated,
    ev.AGENT_TOKEN_ISSUED: _token,
    ev.AGENT_CONNECTED: _connected,
    ev.AGENT_DISCONNECTED: _disconnected,
    ev.AGENT_STATE_CHANGED: _state_changed,
    ev.AGENT_RESERVED: _reserved,
    ev.AGENT_RELEASED: _released,
    ev.AGENT_ENGAGED: _engaged,
    ev.AGENT_FREED: _freed,
    ev.AGENT_WRAPUP_STARTED: _wrapup_started,
    ev.AGENT_WRAPUP_ENDED: _wrapup_ended,
}

"""Agents' desks: which websocket each connected agent has here, and what to tell it.

What a desk is told is derived from the state, not from who made a decision: after
each change, every connected agent's pending offers, contacts and presence are
compared with what its desk was told, and the difference is sent (offer, assigned,
offer_revoked, contact_ended, state). Any instance can therefore hold any agent's
socket, and a reconnecting desk gets the full picture in `hello`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from .decide import priority_of
from .state import AgentState, ContactState, RouterState

log = logging.getLogger(__name__)


class Socket(Protocol):
    async def send_str(self, data: str) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


def iso(at_s: float) -> str:
    return datetime.fromtimestamp(at_s, timezone.utc).isoformat()


def contact_summary(contact: ContactState, now_s: float) -> dict[str, Any]:
    facts = contact.facts
    summary: dict[str, Any] = {"id": contact.contact_id, "queue": contact.queue_id,
                               "seconds_waited": round(max(0.0, now_s - contact.wait_from_s), 1)}  # this wait
    if facts is not None:
        summary.update({
            "channel": facts.channel.value, "segment": facts.segment.value, "language": facts.language,
            "needs": sorted(n.value for n in facts.needs), "intent": facts.intent.value,
            "customer": {"id": facts.customer_id, "repeat_contacts_7d": facts.repeat_count,
                         "tags": sorted(facts.tags), "dedicated_agent": facts.dedicated_agent,
                         "sign_language": facts.sign_language},
        })
    if contact.plan is not None:
        summary["priority"] = round(priority_of(contact, now_s), 1)
    if contact.callback_due:
        summary["callback"] = True  # call the customer back: they are not on the line
    return summary


@dataclass
class Desk:
    agent_id: str
    socket: Socket
    offers: set[str] = field(default_factory=set)
    contacts: set[str] = field(default_factory=set)
    presence: str = ""
    last_pong: float = field(default_factory=time.monotonic)
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    token_sha256: str | None = None  # the token it was opened with: a newer one issued closes it
    closing: str | None = None  # why it is being closed (replaced, token_revoked): it acts no more


class DeskHub:
    """The desks open on this instance (`instance`), kept in line with the log.

    `unrecorded(agent_id)` is called when the log says an agent whose desk is open here is
    disconnected (the leader took this instance for gone while its database connection was
    down, or a race of closing and opening): the desk is there, so it must be recorded
    again, or the agent would never be offered anything."""

    def __init__(self, state: RouterState, clock: Any, instance: str | None = None,
                 unrecorded: Callable[[str], None] | None = None) -> None:
        self._state = state
        self._clock = clock
        self.instance = instance
        self.unrecorded = unrecorded
        self.desks: dict[str, Desk] = {}

    def connect(self, agent_id: str, socket: Socket, token_sha256: str | None = None) -> Desk:
        old = self.desks.pop(agent_id, None)
        if old is not None:  # one desk per agent: the newest wins
            self._replaced(old)
        desk = Desk(agent_id, socket, token_sha256=token_sha256)
        desk.writer = asyncio.create_task(self._write(desk), name=f"desk-{agent_id}")
        self.desks[agent_id] = desk
        desk.outbox.put_nowait(self._hello(desk))
        agent = self._state.agents.get(agent_id)
        if agent is not None and token_sha256 is not None and agent.token_sha256 != token_sha256:
            self._revoked(desk)  # a new token was issued while this desk was being opened
        return desk

    def disconnect(self, desk: Desk) -> bool:
        """Forget a desk; True when it was the agent's current one."""
        if desk.writer is not None:
            desk.writer.cancel()
        if self.desks.get(desk.agent_id) is desk:
            del self.desks[desk.agent_id]
            return True
        return False

    def send(self, desk: Desk, message: dict[str, Any]) -> None:
        desk.outbox.put_nowait(message)

    def sync(self, agent_ids: set[str]) -> None:
        for agent_id in agent_ids & self.desks.keys():
            agent = self._state.agents.get(agent_id)
            if agent is None:
                continue
            if agent.connected and agent.desk_instance not in (None, self.instance) and self.instance is not None:
                # The agent opened a desk on another instance since: that one is the desk now.
                # Forgotten here first, so its closing records nothing (it is not the agent's).
                self._replaced(self.desks.pop(agent_id))
                continue
            desk = self.desks[agent_id]
            if desk.token_sha256 is not None and agent.token_sha256 != desk.token_sha256:
                self._revoked(desk)
                continue
            if not agent.connected and self.unrecorded is not None:
                self.unrecorded(agent_id)
            for message in self._diff(self.desks[agent_id], agent):
                self.desks[agent_id].outbox.put_nowait(message)

    def close_all(self, code: int, reason: str) -> None:
        """Close every desk open here, each after what it was already told (a stopping server)."""
        for desk in list(self.desks.values()):
            desk.outbox.put_nowait({"type": "_close", "code": code, "reason": reason})

    def confirm_state(self, desk: Desk) -> None:
        """Tell the desk its agent's state as it stands (the answer to a `state` message that
        changes nothing: the desk is told, and nothing is recorded)."""
        agent = self._state.agents.get(desk.agent_id)
        if agent is not None:
            self.send(desk, {"type": "state", **self._state_view(agent)})

    @staticmethod
    def _revoked(desk: Desk) -> None:
        """A new token was issued (a lost or leaked one is replaced): the old one opens no desk
        any more, and a desk opened with it is closed too. Its closing is recorded as the
        agent's disconnection (it stays this agent's desk until it closes)."""
        desk.outbox.put_nowait({"type": "error", "code": "token_revoked", "ref": None,
                                "message": "a new desk token was issued for you; sign in with it"})
        desk.outbox.put_nowait({"type": "_close", "code": 4001, "reason": "token revoked"})
        desk.token_sha256 = None  # said once
        desk.closing = "token_revoked"

    @staticmethod
    def _replaced(desk: Desk) -> None:
        desk.outbox.put_nowait({"type": "error", "code": "replaced", "message": "this desk was opened elsewhere",
                                "ref": None})
        desk.outbox.put_nowait({"type": "_close"})
        desk.closing = "replaced"

    def _hello(self, desk: Desk) -> dict[str, Any]:
        agent = self._state.agents[desk.agent_id]
        now_s = self._clock()
        offers = [offer for oid in agent.offers if (offer := self._offer(oid, now_s)) is not None]
        desk.offers, desk.contacts, desk.presence = ({o["offer_id"] for o in offers}, set(agent.contacts),
                                                     self._presence(agent))
        return {"type": "hello", "agent_id": agent.agent_id, "state": self._state_view(agent),
                "capacity": {ch.value: n for ch, n in (agent.profile.channels.items() if agent.profile else ())},
                "active_contacts": [self._contact(cid, now_s) for cid in agent.contacts],
                "pending_offers": offers}

    def _diff(self, desk: Desk, agent: AgentState) -> list[dict[str, Any]]:
        now_s, out, untold = self._clock(), [], set[str]()
        for offer_id in agent.offers.keys() - desk.offers:
            offer = self._offer(offer_id, now_s)
            if offer is None:
                untold.add(offer_id)
            else:
                out.append(offer)
        for offer_id in desk.offers - agent.offers.keys():
            out.append(self._closed_offer(offer_id, agent))
        for contact_id in desk.contacts - agent.contacts.keys():
            contact = self._state.contacts.get(contact_id)
            out.append({"type": "contact_ended", "contact_id": contact_id,
                        "reason": (contact.end_reason if contact and contact.end_reason else "transferred or ended")})
        presence = self._presence(agent)
        if presence != desk.presence:
            out.append({"type": "state", **self._state_view(agent)})
        desk.offers, desk.contacts, desk.presence = agent.offers.keys() - untold, set(agent.contacts), presence
        return out

    def _closed_offer(self, offer_id: str, agent: AgentState) -> dict[str, Any]:
        contact_id = self._state.assigned_offers.get(offer_id)
        if contact_id is not None and contact_id in agent.contacts:
            return {"type": "assigned", "offer_id": offer_id, "contact_id": contact_id}
        reason = self._state.closed_offers.get(offer_id, "withdrawn")
        return {"type": "offer_revoked", "offer_id": offer_id, "reason": reason}

    def _offer(self, offer_id: str, now_s: float) -> dict[str, Any] | None:
        """The offer as the desk is told it; None when it cannot be taken (its contact is
        finished and forgotten, its revoke on the way): not shown, so never offered."""
        offer = self._state.offers.get(offer_id)
        contact = self._state.contacts.get(offer.contact_id) if offer is not None else None
        if offer is None or contact is None:
            return None
        return {"type": "offer", "offer_id": offer_id, "contact": contact_summary(contact, now_s),
                "expires_at": iso(offer.expires_at_s), "reasons": list(self._state.offer_reasons.get(offer_id, ()))}

    def _contact(self, contact_id: str, now_s: float) -> dict[str, Any]:
        contact = self._state.contacts.get(contact_id)
        return contact_summary(contact, now_s) if contact else {"id": contact_id}

    @staticmethod
    def _presence(agent: AgentState) -> str:
        return f"{agent.presence.value}:{agent.wrapup_until_s is not None}"

    @staticmethod
    def _state_view(agent: AgentState) -> dict[str, Any]:
        view: dict[str, Any] = {"state": agent.presence.value, "in_wrapup": agent.wrapup_until_s is not None,
                                "active_contacts": len(agent.contacts), "pending_offers": len(agent.offers)}
        if agent.wrapup_until_s is not None:
            view["wrapup_until"] = iso(agent.wrapup_until_s)
        return view

    async def _write(self, desk: Desk) -> None:
        while True:
            message = await desk.outbox.get()
            if message.get("type") == "_close":
                reason = str(message.get("reason", "replaced by a newer desk")).encode()
                await desk.socket.close(code=int(message.get("code", 4000)), message=reason)
                return
            try:
                text = orjson.dumps(message).decode()
            except TypeError as exc:  # orjson.JSONEncodeError: one message lost, not the desk
                log.error("a message to the desk of %s could not be written (%s): %.200r", desk.agent_id, exc, message)
                continue
            try:
                await desk.socket.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.info("desk of %s went away while writing: %s", desk.agent_id, exc)
                return

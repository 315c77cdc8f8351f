"""The router's events: facts in the past tense, on contact and agent streams.

Contact streams (`contact-<domain>:<contact id>`) hold the channel adapters' events
(ContactOpened, ContactArrived, ContactIntentChanged, MessageReceived, BotHandedOff,
CustomerAbandoned, ContactEnded, GatewayEventIgnored) and the router's:

| type | data |
|---|---|
| ContactQueued | contact_id, queue_id, rule_id, policy_version, priority, requirements, plan (RoutingPlan.to_json()), queued_at_s |
| ContactUnroutable | contact_id, reason (no rule matches, or no agent on the roster could ever serve it), details |
| ContactUnservable | contact_id, gaps (why no agent on the roster could serve it): reported, it still waits |
| ContactRequeued | contact_id, queue_id, requirements, priority, reason (overflow, transfer, relax, named_agent_fallback...), step; same_wait (true: the wait goes on with its SLA clock, e.g. a named agent did not take a transfer), detail; answer_within_s, wrapup_s (a transfer to another queue: that queue's SLA target for the new wait and its wrap-up) |
| OfferMade | offer_id, contact_id, agent_id, channel, expires_at_s, offered_at_s, reasons, considered, epoch |
| OfferAccepted | offer_id, contact_id, agent_id, at_s |
| OfferRejected | offer_id, contact_id, agent_id, reason, at_s |
| OfferExpired | offer_id, contact_id, agent_id, at_s |
| OfferRevoked | offer_id, contact_id, agent_id, reason, at_s |
| ContactAssigned | offer_id, contact_id, agent_id, channel, at_s, waited_s |
| ContactTransferred | contact_id, from_agent, to_queue or to_agent, note, at_s |
| ContactCompleted | contact_id, agent_id, disposition, at_s |
| EscalationApplied | contact_id, step (index), action, params, queue_id, requirements, priority_delta, source, at_s; answer_within_s, wrapup_s (when it moves the contact to another queue: that queue's SLA target, counted from the start of the same wait, and its wrap-up) |
| SlaTimerStarted | contact_id, queue_id, answer_within_s, due_at_s, at_s (with every ContactQueued: the deadline the SLA timer is armed for; a re-placement restates it under the new plan, from the first queueing) |
| SlaBreached | contact_id, queue_id, answer_within_s, at_s |
| CallbackScheduled | contact_id, callback_at_s, at_s |
| CallbackDue | contact_id, at_s (the callback time came: the contact waits again, as an outbound call) |
| FollowUpDue | contact_id, name, due_s, at_s |

Agent streams (`agent-<domain>:<agent id>`):

| type | data |
|---|---|
| AgentRegistered | agent_id, name, team, supervisor, skills, languages, channels, total_capacity |
| AgentUpdated | agent_id and the changed fields of the above |
| AgentTokenIssued | agent_id, token_sha256 |
| AgentConnected / AgentDisconnected | agent_id, at_s, instance (the server instance holding the desk), reason (a disconnection the leader recorded for an instance that is gone) |
| AgentStateChanged | agent_id, state (available, away, disconnected, offline), reason, at_s |
| AgentReserved | agent_id, offer_id, contact_id, channel, at_s (capacity held by an offer) |
| AgentReleased | agent_id, offer_id, contact_id, channel, reason, at_s (an offer's hold ended without a contact) |
| AgentEngaged | agent_id, contact_id, channel, offer_id, at_s (the contact is now the agent's) |
| AgentFreed | agent_id, contact_id, channel, reason, at_s (a contact left the agent: completed, transferred, ended) |
| AgentWrapUpStarted / AgentWrapUpEnded | agent_id, contact_id, at_s, until_s |

Router streams (`router-<domain>:leader`): LeaderElected (epoch, instance, at_s).

An offer, an assignment and the end of one are each appended to the contact's and
the agent's streams together, atomically, at the versions the decision was based on
(`append_many`), so two routers can never both offer a contact or overfill an agent.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Final


def metadata(*, actor: str, correlation_id: str, channel: str, causation_id: str | None = None,
             received_at: str | None = None, **extra: Any) -> dict[str, Any]:
    """What every event's metadata says (the brief): who wrote it (`actor`), the contact,
    agent or policy it belongs to (`correlation_id`), the event it answers (`causation_id`,
    None for a person's own request), the channel it concerns (a contact's channel, or
    `admin`, `desk`, `router` for the router's own interfaces) and when it was received."""
    return {"correlation_id": correlation_id, "causation_id": causation_id, "actor": actor, "channel": channel,
            "received_at": received_at or datetime.now(timezone.utc).isoformat(), **extra}

CONTACT_QUEUED: Final = "ContactQueued"
CONTACT_UNROUTABLE: Final = "ContactUnroutable"
CONTACT_REQUEUED: Final = "ContactRequeued"
CONTACT_UNSERVABLE: Final = "ContactUnservable"
OFFER_MADE: Final = "OfferMade"
OFFER_ACCEPTED: Final = "OfferAccepted"
OFFER_REJECTED: Final = "OfferRejected"
OFFER_EXPIRED: Final = "OfferExpired"
OFFER_REVOKED: Final = "OfferRevoked"
CONTACT_ASSIGNED: Final = "ContactAssigned"
CONTACT_TRANSFERRED: Final = "ContactTransferred"
CONTACT_COMPLETED: Final = "ContactCompleted"
ESCALATION_APPLIED: Final = "EscalationApplied"
SLA_TIMER_STARTED: Final = "SlaTimerStarted"
SLA_BREACHED: Final = "SlaBreached"
CALLBACK_SCHEDULED: Final = "CallbackScheduled"
CALLBACK_DUE: Final = "CallbackDue"
FOLLOW_UP_DUE: Final = "FollowUpDue"

AGENT_REGISTERED: Final = "AgentRegistered"
AGENT_UPDATED: Final = "AgentUpdated"
AGENT_TOKEN_ISSUED: Final = "AgentTokenIssued"
AGENT_CONNECTED: Final = "AgentConnected"
AGENT_DISCONNECTED: Final = "AgentDisconnected"
AGENT_STATE_CHANGED: Final = "AgentStateChanged"
AGENT_RESERVED: Final = "AgentReserved"
AGENT_RELEASED: Final = "AgentReleased"
AGENT_ENGAGED: Final = "AgentEngaged"
AGENT_FREED: Final = "AgentFreed"
AGENT_WRAPUP_STARTED: Final = "AgentWrapUpStarted"
AGENT_WRAPUP_ENDED: Final = "AgentWrapUpEnded"

LEADER_ELECTED: Final = "LeaderElected"

# The channel adapters' events the router reacts to.
CONTACT_ARRIVED: Final = "ContactArrived"
CONTACT_INTENT_CHANGED: Final = "ContactIntentChanged"
CUSTOMER_ABANDONED: Final = "CustomerAbandoned"
CONTACT_ENDED: Final = "ContactEnded"

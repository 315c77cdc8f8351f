"""Agents (admin) and the agent desk websocket: thin handlers over AgentDirectory and RouterService."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError

from ..agents import AgentChanges, AgentDirectory, AgentExists, NewAgent, UnknownAgent, token_digest
from ..commands import CommandError, accept, complete, reject, set_presence, transfer, wrapup_done
from ..decide import Decision
from ..desk import Desk, DeskHub
from ..service import RouterService
from eventstore import EventStoreError, InvalidAppendError
from policies.vocabulary import Presence

from . import keys
from .auth import bearer, require_admin
from .channels import read_limited_body
from .errors import ApiError
from .openapi import error_responses
from .policy_bodies import validation_error

log = logging.getLogger(__name__)

AGENTS = web.AppKey("agents", AgentDirectory)
ROUTER = web.AppKey("router", RouterService)
HUB = web.AppKey("desk_hub", DeskHub)
MAX_BODY = 64 * 1024
# A desk frame above MAX_BODY gets an error frame and the desk stays open; only beyond this
# (no desk sends such a thing) does the websocket itself close the connection (1009).
MAX_DESK_FRAME = 1024 * 1024
PING_EVERY_S = 10.0
PONG_TIMEOUT_S = 35.0
# A desk silent past PONG_TIMEOUT_S is closed with this code: not 4001 (the token was revoked:
# the desk must not reconnect with it) nor 4000 (replaced): a desk that was only asleep or
# cut off for a while reconnects and carries on.
NO_PONG_CLOSE = 4002


async def _json(request: web.Request) -> Any:
    # The whole body, however it was split on the wire (`content.read(n)` returns only what
    # has arrived so far, so a body in two TCP segments was read half and refused).
    body = await read_limited_body(request, MAX_BODY)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


async def _agent_or_404(request: web.Request, agent_id: str) -> dict[str, Any]:
    directory = request.app[AGENTS]
    for attempt in range(2):
        try:
            return directory.view(agent_id)
        except UnknownAgent:
            if attempt == 0:
                # Perhaps registered a moment ago through another worker on this port: this
                # instance learns it from the log; wait until it has caught up, then look again.
                await request.app[ROUTER].sync()
    raise ApiError(404, "agent_not_found", f"no agent {agent_id!r}", field="id")


async def post_agent(request: web.Request) -> web.Response:
    actor = require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    try:
        agent = NewAgent.model_validate_json(orjson.dumps(await _json(request)))
    except ValidationError as exc:
        raise validation_error(exc) from None
    try:
        view = await request.app[AGENTS].register(agent, actor)
    except AgentExists:
        raise ApiError(409, "agent_exists", f"agent {agent.id!r} exists; use PATCH to change it", field="id") from None
    return web.json_response(view, status=201)


async def list_agents(request: web.Request) -> web.Response:
    require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    return web.json_response({"agents": request.app[AGENTS].list()})


async def get_agent(request: web.Request) -> web.Response:
    require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    return web.json_response(await _agent_or_404(request, request.match_info["agent_id"]))


async def patch_agent(request: web.Request) -> web.Response:
    actor = require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    agent_id = request.match_info["agent_id"]
    await _agent_or_404(request, agent_id)
    try:
        changes = AgentChanges.model_validate_json(orjson.dumps(await _json(request)))
    except ValidationError as exc:
        raise validation_error(exc) from None
    if not changes.model_fields_set:
        raise ApiError(422, "nothing_to_change", "give at least one field to change")
    return web.json_response(await request.app[AGENTS].update(agent_id, changes, actor))


async def post_token(request: web.Request) -> web.Response:
    actor = require_admin(request, request.app[keys.CREDENTIALS].admin_token)
    agent_id = request.match_info["agent_id"]
    await _agent_or_404(request, agent_id)
    token = await request.app[AGENTS].issue_token(agent_id, actor)
    return web.json_response({"token": token, "agent_id": agent_id}, status=201)


# -- the desk websocket ---------------------------------------------------------------------------


async def _desk_agent(request: web.Request) -> tuple[str, str]:
    """The agent a desk token names, and the token's digest."""
    token = request.query.get("token") or bearer(request)
    agent_id = request.app[AGENTS].agent_for_token(token) if token else None
    if agent_id is None and token:
        await request.app[ROUTER].sync()  # a token issued a moment ago through another worker
        agent_id = request.app[AGENTS].agent_for_token(token)
    if agent_id is None:
        raise ApiError(401, "unauthorized", "open the desk with ?token=<agent token> or 'Authorization: Bearer'")
    assert token is not None
    return agent_id, token_digest(token)


async def desk_socket(request: web.Request) -> web.StreamResponse:
    agent_id, digest = await _desk_agent(request)
    router, hub = request.app[ROUTER], request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_DESK_FRAME)
    await ws.prepare(request)
    try:
        await router.record_presence(agent_id, "AgentConnected")
    except EventStoreError as exc:
        # Without its connection on record the router cannot offer this desk anything: say
        # why and close, rather than leave a desk open that would never get an offer.
        log.warning("desk of %s refused: its connection could not be recorded (%s)", agent_id, exc)
        await ws.send_str(orjson.dumps(_UNAVAILABLE | {"ref": None}).decode())
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"router unavailable")
        return ws
    desk = hub.connect(agent_id, ws, digest)
    pinger = asyncio.create_task(_ping(ws, desk, hub))
    try:
        async for message in ws:
            desk.last_pong = time.monotonic()  # any frame says the desk is there, not only a pong
            if message.type == WSMsgType.TEXT:
                await _handle(router, hub, desk, message.data)
            elif message.type == WSMsgType.BINARY:
                hub.send(desk, {"type": "error", "code": "invalid_message", "message": "send JSON text frames",
                                "ref": None})
    finally:
        pinger.cancel()
        if hub.disconnect(desk):
            try:
                await router.record_presence(agent_id, "AgentDisconnected")
            except EventStoreError as exc:
                # The agent is gone whether or not the database is there to hear it; until it
                # is on record the router still counts the desk as connected, so keep trying.
                log.warning("the disconnection of %s could not be recorded (%s); retrying", agent_id, exc)
                task = asyncio.create_task(_record_disconnect_later(router, hub, agent_id))
                _RETRIES.add(task)
                task.add_done_callback(_RETRIES.discard)
    return ws


_RETRIES: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


async def _record_disconnect_later(router: RouterService, hub: DeskHub, agent_id: str,
                                   every_s: float = 1.0, give_up_s: float = 600.0) -> None:
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        await asyncio.sleep(every_s)
        if agent_id in hub.desks:  # back already: its new connection is on record instead
            return
        try:
            await router.record_presence(agent_id, "AgentDisconnected")
            return
        except EventStoreError:
            continue
    log.error("gave up recording the disconnection of %s after %.0f s", agent_id, give_up_s)


def desk_reclaimer(router: RouterService, hub: DeskHub) -> Callable[[str], None]:
    """What a hub does when the log says an agent whose desk is open here is disconnected:
    records the connection again, once at a time per agent (`DeskHub.unrecorded`)."""
    reclaiming: set[str] = set()

    async def reclaim(agent_id: str) -> None:
        try:
            agent = router.state.agents.get(agent_id)
            if agent_id in hub.desks and agent is not None and not agent.connected:
                log.warning("the desk of %s is open here but was recorded as disconnected; recording it again",
                            agent_id)
                await router.record_presence(agent_id, "AgentConnected")
        except EventStoreError as exc:
            log.warning("the desk of %s could not be recorded as connected (%s)", agent_id, exc)
        finally:
            reclaiming.discard(agent_id)

    def unrecorded(agent_id: str) -> None:
        if agent_id not in reclaiming:
            reclaiming.add(agent_id)
            task = asyncio.create_task(reclaim(agent_id), name=f"desk-reclaim-{agent_id}")
            _RETRIES.add(task)
            task.add_done_callback(_RETRIES.discard)

    return unrecorded


async def _ping(ws: web.WebSocketResponse, desk: Desk, hub: DeskHub) -> None:
    while not ws.closed:
        await asyncio.sleep(PING_EVERY_S)
        if time.monotonic() - desk.last_pong > PONG_TIMEOUT_S:
            await ws.close(code=NO_PONG_CLOSE, message=b"no pong")
            return
        hub.send(desk, {"type": "ping", "at": time.time()})


_UNAVAILABLE: dict[str, Any] = {
    "type": "error", "code": "unavailable",
    "message": "the router cannot store this right now (database unavailable); nothing changed, try again shortly",
}


def _commands(router: RouterService, desk: Desk, msg: dict[str, Any]) -> Decision:
    if desk.closing is not None:
        # Why here, where the command is decided (after any wait for the router): a desk
        # replaced by another or opened with a revoked token, while it closes, may still
        # have frames on their way in; none of them may act for the agent.
        raise CommandError(desk.closing, "this desk is closing and acts no more; nothing changed")
    state, now_s, agent_id = router.state, time.time(), desk.agent_id
    kind = msg.get("type")
    if kind == "accept":
        return accept(state, agent_id, msg.get("offer_id"), now_s)
    if kind == "reject":
        return reject(state, agent_id, msg.get("offer_id"), msg.get("reason"), now_s)
    if kind == "state":
        return set_presence(state, agent_id, msg.get("state"), msg.get("reason"), now_s)
    if kind == "complete":
        return complete(state, agent_id, msg.get("contact_id"), msg.get("disposition"), now_s)
    if kind == "wrapup_done":
        return wrapup_done(state, agent_id, now_s)
    if kind == "transfer":
        return transfer(state, agent_id, msg.get("contact_id"), msg.get("to_queue"), msg.get("to_agent"),
                        msg.get("note"), now_s, policy=router.current_policy())
    raise CommandError("unknown_type", f"unknown message type {kind!r}; expected accept, reject, state, "
                                       "complete, wrapup_done, transfer or pong")


def _already(router: RouterService, agent_id: str, wanted: object) -> bool:
    """Whether the agent is in the state asked for, with nothing left for the command to do
    (going away also hands pending offers on)."""
    agent = router.state.agents.get(agent_id)
    return (agent is not None and agent.presence.value == wanted
            and not (agent.presence is Presence.AWAY and agent.offers))


def _ref(msg: object) -> str | int | float | None:
    """What an error frame names as the message it answers (docs/desk.md): the desk's own
    `ref`, else the offer or contact it was about, when that is a string or a number: also
    "" and 0 (a desk numbering its messages from 0) and 1.5, never true or false. Anything
    else the desk sent there (a list nested hundreds deep) may not even be writable back."""
    if not isinstance(msg, dict):
        return None
    for key in ("ref", "offer_id", "contact_id"):
        value: object = msg.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return value
    return None


async def _handle(router: RouterService, hub: DeskHub, desk: Desk, text: str) -> None:
    # The limit is of the frame's bytes (64 KiB), as documented, not of its characters: a
    # frame of CJK text is three bytes a character.
    if len(text) > MAX_BODY // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_BODY:
        hub.send(desk, {"type": "error", "code": "message_too_large",
                        "message": f"a desk message is at most {MAX_BODY // 1024} KiB", "ref": None})
        return
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        hub.send(desk, {"type": "error", "code": "invalid_json", "message": "the message is not valid JSON",
                        "ref": None})
        return
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        hub.send(desk, {"type": "error", "code": "invalid_message", "message": "a message is an object with a type",
                        "ref": _ref(msg)})
        return
    if msg["type"] == "pong":
        return  # its arrival was noted (`desk_socket`)
    if msg["type"] == "state" and desk.closing is None and _already(router, desk.agent_id, msg.get("state")):
        # Already so (a second click, a desk re-sending its state on reconnect): confirmed,
        # and no event: each one was recorded in the agent's history, for nothing.
        hub.confirm_state(desk)
        return
    ref = _ref(msg)
    for attempt in range(4):
        try:
            if await router.command(desk.agent_id, lambda: _commands(router, desk, msg)):
                return
        except CommandError as exc:
            hub.send(desk, {"type": "error", "code": exc.code, "message": exc.message, "ref": ref})
            return
        except InvalidAppendError as exc:  # a text the log cannot hold (a NUL character): not worth a retry
            hub.send(desk, {"type": "error", "code": "invalid_message",
                            "message": f"this message cannot be recorded: {exc.message}", "ref": ref})
            return
        except EventStoreError as exc:
            # E.g. the database is away: the command is not stored, the desk stays open and the
            # agent is told to try again (nothing changed).
            log.warning("desk command %s of %s not stored: %s", msg["type"], desk.agent_id, exc)
            hub.send(desk, _UNAVAILABLE | {"ref": ref})
            return
        await asyncio.sleep(0.02 * (attempt + 1))  # something changed meanwhile: decide again on fresh state
    hub.send(desk, {"type": "error", "code": "busy", "message": "the contact kept changing; try again", "ref": ref})


async def _close_desks(app: web.Application) -> None:
    """A stopping server closes its desks with 1001 (going away): the desk reconnects, here
    once restarted or to another instance, within the grace period.

    Why on_shutdown: it runs before aiohttp waits for the handlers still running (a desk's
    runs as long as its socket) and before the router and the store stop (cleanup_ctx), so
    each desk closes at once and its disconnection is still recorded. Left open, a stop
    waited some 30 s for the socket's heartbeat to fail, and the desks saw the connection
    cut (1006) with nothing recorded until then."""
    hub = app.get(HUB)
    if hub is not None:
        hub.close_all(WSCloseCode.GOING_AWAY, "the server is stopping; reconnect")


def add_routes(app: web.Application) -> None:
    app.on_shutdown.append(_close_desks)
    app.router.add_post("/v1/agents", post_agent)
    app.router.add_get("/v1/agents", list_agents)
    app.router.add_get("/v1/agents/ws", desk_socket)
    app.router.add_get("/v1/agents/{agent_id}", get_agent)
    app.router.add_patch("/v1/agents/{agent_id}", patch_agent)
    app.router.add_post("/v1/agents/{agent_id}/token", post_token)


def openapi_paths(doc: dict[str, Any]) -> None:
    new_agent = NewAgent.model_json_schema(ref_template="#/components/schemas/{model}")
    changes = AgentChanges.model_json_schema(ref_template="#/components/schemas/{model}")
    for schema in (new_agent, changes):
        doc["components"]["schemas"].update(schema.pop("$defs", {}))
    new_agent["example"] = {"id": "a-017", "name": "Li Na", "team": "wealth", "skills": {"wealth": 4, "vip": 3},
                            "languages": ["zh", "en"], "channels": {"phone": 1, "webchat": 3}, "total_capacity": 3}
    doc["components"]["schemas"]["NewAgent"] = new_agent
    doc["components"]["schemas"]["AgentChanges"] = changes
    admin = [{"admin": []}]
    json_body = {"application/json": {"schema": {"type": "object"}}}
    agent_id = [{"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    doc["paths"]["/v1/agents"] = {
        "post": {"summary": "Register an agent", "security": admin,
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/NewAgent"}}}},
                 "responses": {"201": {"description": "registered", "content": json_body},
                               **error_responses(400, 401, 403, 409, 413, 415, 422)}},
        "get": {"summary": "All agents with their live state", "security": admin,
                "responses": {"200": {"description": "agents", "content": json_body}, **error_responses(401, 403)}},
    }
    doc["paths"]["/v1/agents/{agent_id}"] = {
        "get": {"summary": "One agent", "security": admin, "parameters": agent_id,
                "responses": {"200": {"description": "the agent", "content": json_body},
                              **error_responses(401, 403, 404)}},
        "patch": {"summary": "Change an agent's skills, languages, channels or capacity (applies at once)",
                  "description": "Fields left out keep their values. A total_capacity never set apart from the "
                                 "channels (the largest channel's capacity) follows new channels; one set "
                                 "on its own stays until changed.",
                  "security": admin, "parameters": agent_id,
                  "requestBody": {"required": True, "content": {"application/json": {
                      "schema": {"$ref": "#/components/schemas/AgentChanges"}}}},
                  "responses": {"200": {"description": "changed", "content": json_body},
                                **error_responses(400, 401, 403, 404, 413, 415, 422)}},
    }
    doc["paths"]["/v1/agents/{agent_id}/token"] = {"post": {
        "summary": "Issue the agent's desk token (replaces the previous one)", "security": admin,
        "parameters": agent_id,
        "responses": {"201": {"description": "the token", "content": json_body}, **error_responses(401, 403, 404)}}}
    doc["paths"]["/v1/agents/ws"] = {"get": {
        "summary": "The agent desk websocket (JSON text frames; see docs/desk.md for every message)",
        "parameters": [{"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"101": {"description": "switching to the websocket"}, **error_responses(401)}}}

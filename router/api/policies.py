"""The policy admin API: read versions, publish, validate, roll back, simulate (admin token).

Thin handlers: they parse and check the request, call `PolicyService` or the pure
engine, and map errors to the brief's shape. A rejected request appends nothing:
every check runs before the one append, and the append itself is the version check.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import yaml
from aiohttp import web

from policies.engine import CompiledPolicy, NoMatchingRule, compile_policy
from policies.errors import PolicyInvalid, PolicyParseError
from policies.loader import JSON_TYPES, YAML_TYPES, document_from_data, parse_data
from policies.report import ValidationReport, error, report_of
from policies.schema import PolicyDocument
from policies.simulate import simulate
from policies.validate import validate_document
from policies.vocabulary import AgentProfile, AgentSnapshot

from ..policy_service import AlreadyActive, PolicyService, PolicyTooLarge, StoredPolicy, UnknownVersion, VersionConflict
from . import keys
from .auth import require_admin
from .channels import read_limited_body
from .errors import ApiError
from .policy_bodies import RollbackRequest, SimulateRequest, ValidateRequest, parse_body
from .policy_openapi import openapi_paths

__all__ = ["add_routes", "openapi_paths"]

MAX_POLICY_BYTES = 1024 * 1024
MAX_SIMULATE_BYTES = 2 * 1024 * 1024
MAX_ROLLBACK_BYTES = 16 * 1024
MAX_COMMENT_CHARS = 2000
TEXT_TYPES = JSON_TYPES | YAML_TYPES | {"text/plain"}
_VERSION = re.compile(r"[0-9]{1,9}")


# --- reading ------------------------------------------------------------------------------

async def get_active(request: web.Request) -> web.StreamResponse:
    _admin(request)
    service = await _fresh_service(request)
    return _policy_response(request, service.active.stored(), service.active.version)


async def get_history(request: web.Request) -> web.Response:
    _admin(request)
    service = await _fresh_service(request)
    limit = _query_int(request, "limit", 100, 1, 1000)
    before = _query_int(request, "before", 2**31 - 1, 1, 2**31 - 1)
    records = [r for r in reversed(service.history()) if r.version < before][:limit]
    return web.json_response({
        "active_version": service.active.version, "newest_version": service.history()[-1].version,
        "versions": [r.to_json() for r in records],
    })


async def get_version(request: web.Request) -> web.StreamResponse:
    _admin(request)
    service = await _fresh_service(request)
    version = int(request.match_info["version"])
    with _service_errors(version_field="version"):
        stored = await service.get(version)
    return _policy_response(request, stored, service.active.version)


# --- changing -----------------------------------------------------------------------------

async def put_policy(request: web.Request) -> web.Response:
    actor = _admin(request)
    based_on = _if_match(request)
    comment = request.query.get("comment", "")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ApiError(400, "invalid_comment", f"the comment is over {MAX_COMMENT_CHARS} characters", field="comment")
    text, content_type = await _policy_text(request)
    doc = _document(text, content_type)
    profiles, roster = _live_profiles(request)
    source = None if _is_json(text, content_type) else text  # YAML keeps its comments; JSON is the document
    with _service_errors():
        change = await request.app[keys.POLICIES].publish(
            doc, based_on=based_on, author=actor, comment=comment, source=source, roster=profiles)
    return _changed(change.record.to_json(), roster)


async def post_rollback(request: web.Request) -> web.Response:
    actor = _admin(request)
    # If-Match is optional here (the brief asks for it on PUT only): the rollback names its
    # target, and without If-Match it is based on the newest version.
    based_on = _if_match(request) if "If-Match" in request.headers else None
    body = parse_body(RollbackRequest, await read_limited_body(request, MAX_ROLLBACK_BYTES))
    profiles, roster = _live_profiles(request)
    with _service_errors():
        change = await request.app[keys.POLICIES].rollback(
            body.to_version, based_on=based_on, author=actor, reason=body.reason, roster=profiles)
    return _changed(change.record.to_json(), roster)


def _changed(record: dict[str, Any], roster: dict[str, Any]) -> web.Response:
    version = record["version"]
    headers = {"ETag": f'"{version}"', "Location": f"/v1/policies/{version}"}
    return web.json_response({**record, "roster": roster}, status=201, headers=headers)


# --- checking -----------------------------------------------------------------------------

async def post_validate(request: web.Request) -> web.Response:
    _admin(request)
    text, content_type = await _policy_text(request)
    envelope = _envelope(text, content_type)
    if envelope is not None:
        profiles: Sequence[AgentProfile] | None = [a.profile() for a in envelope.roster]
        roster = _roster_use("request", len(profiles), checked=True)
        report = _report_of(lambda: _draft_document(envelope.policy), profiles)
    else:
        profiles, roster = _live_profiles(request)
        report = _report_of(lambda: _text_document(text, content_type), profiles)
    return web.json_response({**report.to_json(), "roster": roster})


async def post_simulate(request: web.Request) -> web.Response:
    _admin(request)
    body = parse_body(SimulateRequest, await read_limited_body(request, MAX_SIMULATE_BYTES))
    at_s = body.at.timestamp() if body.at is not None else time.time()
    snapshots, roster = _snapshots(request, body, at_s)
    policy, used = await _simulated_policy(request, body, snapshots)
    try:
        result = simulate(policy, body.contact.facts(policy.home_language), at_s, snapshots, body.horizon_s)
    except NoMatchingRule as exc:
        raise ApiError(422, "no_matching_rule", str(exc), field="contact") from None
    at = datetime.fromtimestamp(at_s, timezone.utc).isoformat()
    return web.json_response({**result, "at": at, "policy": used, "roster": roster})


async def _simulated_policy(
    request: web.Request, body: SimulateRequest, snapshots: Sequence[AgentSnapshot]
) -> tuple[CompiledPolicy, dict[str, Any]]:
    if body.policy is None:
        service = await _fresh_service(request)
        return service.active.current(), {"source": "active", "version": service.active.version}
    try:
        doc = _draft_document(body.policy)
        report = validate_document(doc, [s.profile for s in snapshots] if snapshots else None)
        if not report.ok:
            raise PolicyInvalid(report)
    except PolicyInvalid as exc:
        raise _invalid_policy(exc.report, prefix="policy") from None
    return compile_policy(doc, 0), {"source": "draft", "version": 0, "report": report.to_json()}


# --- parsing helpers ----------------------------------------------------------------------

def _if_match(request: web.Request) -> int:
    raw = request.headers.get("If-Match")
    if raw is None:
        raise ApiError(428, "if_match_required", "send If-Match with the policy version this change is based on "
                       "(the ETag of GET /v1/policies/active)", field="If-Match")
    value = raw.strip().removeprefix("W/").strip('"')
    if not _VERSION.fullmatch(value):
        raise ApiError(400, "invalid_if_match", f"If-Match must name one policy version, like \"3\", not {raw!r}",
                       field="If-Match")
    return int(value)


async def _policy_text(request: web.Request) -> tuple[str, str | None]:
    content_type = request.content_type if "Content-Type" in request.headers else None
    if content_type is not None and content_type not in TEXT_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the policy as application/yaml or application/json, "
                       "e.g. curl --data-binary @policy.yaml -H 'Content-Type: application/yaml'", field="Content-Type")
    body = await read_limited_body(request, MAX_POLICY_BYTES)
    try:
        return body.decode("utf-8-sig"), content_type
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", "the policy must be UTF-8 text") from None


def _is_json(text: str, content_type: str | None) -> bool:
    """The same choice `parse_data` makes."""
    return content_type in JSON_TYPES or (content_type not in YAML_TYPES and text.lstrip().startswith("{"))


def _document(text: str, content_type: str | None) -> PolicyDocument:
    """The request body as a document, or 422 with the report."""
    try:
        return _text_document(text, content_type)
    except PolicyInvalid as exc:
        raise _invalid_policy(exc.report) from None


def _text_document(text: str, content_type: str | None) -> PolicyDocument:
    return _parsed(lambda: document_from_data(parse_data(text, content_type)))


def _draft_document(draft: str | dict[str, Any]) -> PolicyDocument:
    """A policy given inside a JSON body: text (YAML or JSON) or an object."""
    return _parsed(lambda: document_from_data(parse_data(draft) if isinstance(draft, str) else draft))


def _parsed(make: Callable[[], PolicyDocument]) -> PolicyDocument:
    """Parse errors become a report too, so every bad policy is answered the same way (PolicyInvalid)."""
    try:
        return make()
    except PolicyParseError as exc:
        raise PolicyInvalid(report_of([error(exc.path, exc.message, "parse")])) from None


def _report_of(make: Callable[[], PolicyDocument], roster: Sequence[AgentProfile] | None) -> ValidationReport:
    try:
        return validate_document(make(), roster)
    except PolicyInvalid as exc:
        return exc.report


def _envelope(text: str, content_type: str | None) -> ValidateRequest | None:
    """`{"policy": ..., "roster": [...]}`: never a policy itself (a policy has no 'policy' field)."""
    if not _is_json(text, content_type):
        return None
    try:
        data = parse_data(text, "application/json")
    except PolicyParseError:
        return None
    if not (isinstance(data, dict) and "policy" in data):
        return None
    return parse_body(ValidateRequest, text.encode())


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _VERSION.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name} must be a whole number from {low} to {high}", field=name)
    return int(raw)


# --- errors, rosters, responses -----------------------------------------------------------

def _invalid_policy(report: ValidationReport, prefix: str = "") -> ApiError:
    first = report.errors[0] if report.errors else None
    path = first.path if first else ""
    field = ".".join(p for p in (prefix, path) if p) or None
    more = len(report.errors) - 1
    message = f"{path + ': ' if path else ''}{first.message if first else 'invalid policy'}"
    if more > 0:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return ApiError(422, "invalid_policy", message, field=field, details=report.to_json())


@contextmanager
def _service_errors(version_field: str = "to_version") -> Iterator[None]:
    try:
        yield
    except PolicyInvalid as exc:
        raise _invalid_policy(exc.report) from None
    except VersionConflict as exc:
        raise ApiError(409, "version_conflict",
                       f"the policy is at version {exc.current}, but this change was based on version "
                       f"{exc.based_on}; read version {exc.current}, redo the change on it and send If-Match: "
                       f"\"{exc.current}\"", field="If-Match",
                       details={"current_version": exc.current, "based_on": exc.based_on}) from None
    except UnknownVersion as exc:
        raise ApiError(404, "version_not_found", str(exc), field=version_field,
                       details={"version": exc.version}) from None
    except AlreadyActive as exc:
        raise ApiError(422, "already_active", str(exc), field="to_version") from None
    except PolicyTooLarge as exc:
        raise ApiError(413, "policy_too_large", f"the policy is too large to store: {exc}") from None


def _admin(request: web.Request) -> str:
    """The actor for the audit trail; 401 without the admin token, 403 with an agent's."""
    return require_admin(request, request.app[keys.CREDENTIALS].admin_token)


async def _fresh_service(request: web.Request) -> PolicyService:
    """Admin reads see every stored version, also one another process stored a moment ago."""
    service = request.app[keys.POLICIES]
    await service.refresh()
    return service


def _roster_use(source: str, agents: int, *, checked: bool) -> dict[str, Any]:
    notes = {
        "request": "the roster given in the request",
        "provider": "the live roster of agents",
        "none": "no roster is available: agent checks were skipped",
        "empty": "no roster is available: simulated with no agents",
    }
    return {"source": source, "agents": agents, "checked": checked, "note": notes[source]}


def _live_profiles(request: web.Request) -> tuple[Sequence[AgentProfile] | None, dict[str, Any]]:
    provider = request.app.get(keys.ROSTER_PROVIDER)
    if provider is None:
        return None, _roster_use("none", 0, checked=False)
    profiles = list(provider.profiles())
    return profiles, _roster_use("provider", len(profiles), checked=True)


def _snapshots(request: web.Request, body: SimulateRequest, at_s: float) -> tuple[list[AgentSnapshot], dict[str, Any]]:
    if body.roster is not None:
        return [a.snapshot(at_s) for a in body.roster], _roster_use("request", len(body.roster), checked=True)
    provider = request.app.get(keys.ROSTER_PROVIDER)
    if provider is None:
        return [], _roster_use("empty", 0, checked=True)
    snapshots = list(provider.snapshots())
    return snapshots, _roster_use("provider", len(snapshots), checked=True)


def _policy_response(request: web.Request, stored: StoredPolicy, active_version: int) -> web.StreamResponse:
    headers = {"ETag": f'"{stored.record.version}"'}
    if _wants_yaml(request):
        text = stored.source or yaml.safe_dump(dict(stored.document), sort_keys=False, allow_unicode=True)
        return web.Response(text=text, content_type="application/yaml", headers=headers)
    body = {**stored.to_json(), "active": stored.record.version == active_version}
    return web.json_response(body, headers=headers)


def _wants_yaml(request: web.Request) -> bool:
    if request.query.get("format") == "yaml":
        return True
    accept = request.headers.get("Accept", "")
    return any(t in accept for t in YAML_TYPES) and "application/json" not in accept


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/policies/active", get_active)
    app.router.add_get("/v1/policies/history", get_history)
    app.router.add_get(r"/v1/policies/{version:\d+}", get_version)
    app.router.add_put("/v1/policies", put_policy)
    app.router.add_post("/v1/policies/validate", post_validate)
    app.router.add_post("/v1/policies/rollback", post_rollback)
    app.router.add_post("/v1/policies/simulate", post_simulate)

"""Bearer tokens at the edge: the admin token, and later agents' desk tokens."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from .errors import ApiError


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_admin(request: web.Request, admin_token: str) -> str:
    """Return the actor name for the audit trail, or raise 401/403."""
    token = bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "send the admin token as 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        if request.app.get(AGENT_TOKEN_CHECK) and request.app[AGENT_TOKEN_CHECK](token):
            raise ApiError(403, "forbidden", "this token belongs to an agent; this endpoint needs the admin token")
        raise ApiError(401, "unauthorized", "the token is not valid", headers={"WWW-Authenticate": "Bearer"})
    return "admin"


# Set by the composition root: says whether a token is an agent's desk token (then 403, not 401).
AGENT_TOKEN_CHECK: web.AppKey[Callable[[str], bool]] = web.AppKey("agent_token_check")

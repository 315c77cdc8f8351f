"""Errors at the HTTP edge, in the brief's shape: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from eventstore import EventStoreError, InvalidAppendError, StoreUnavailableError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a client can act on; handlers raise it, the middleware renders it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        details: object = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.details = details


def error_response(error: ApiError) -> web.Response:
    body: dict[str, object] = {"code": error.code, "message": error.message, "field": error.field}
    if error.details is not None:
        body["details"] = error.details
    return web.json_response({"error": body}, status=error.status, headers=error.headers)


def from_store_error(exc: EventStoreError) -> ApiError:
    if isinstance(exc, StoreUnavailableError):
        return ApiError(503, exc.code, "the event store is unavailable; retry shortly", headers={"Retry-After": "2"})
    if isinstance(exc, InvalidAppendError):
        return ApiError(422, exc.code, exc.message, field=exc.field)
    return ApiError(409, exc.code, exc.message)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except EventStoreError as exc:
        return error_response(from_store_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        return error_response(ApiError(exc.status, code, exc.reason, headers=_passthrough(exc)))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal_error", "an internal error occurred; it has been logged"))


def _passthrough(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}

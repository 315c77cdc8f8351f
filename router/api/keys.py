"""Typed keys for what the composition root puts on the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from channels.security import RateLimiter
from eventstore.postgres import PostgresEventStore

from ..config import Credentials, Settings
from ..customers import CustomerState
from ..ingest import IngestService
from ..policy_service import PolicyService, RosterProvider
from ..tasks import TaskBoard

SETTINGS = web.AppKey("settings", Settings)
CREDENTIALS = web.AppKey("credentials", Credentials)
STORE = web.AppKey("store", PostgresEventStore)
CUSTOMERS = web.AppKey("customers", CustomerState)
INGEST = web.AppKey("ingest", IngestService)
GATEWAY_RATE_LIMITER = web.AppKey("gateway_rate_limiter", RateLimiter)
POLICIES = web.AppKey("policies", PolicyService)
ROSTER_PROVIDER = web.AppKey("roster_provider", RosterProvider)  # set by the agents module when present
TASKS = web.AppKey("tasks", TaskBoard)  # the instance's long-running tasks, for /v1/health

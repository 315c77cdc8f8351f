"""Settings, read once from the environment by the composition root (never at import)."""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

GATEWAYS = ("phone", "webchat", "video", "app")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = None
    var_dir: Path = Path("var")
    admin_token: str | None = None
    snapshot_key: str | None = None
    gateway_secrets_file: Path | None = None
    domain: str = "default"
    log_level: str = "INFO"
    event_loop: str = "uvloop"  # or "asyncio" (the standard library's loop)
    # Group-commit transactions the event store keeps running at once (StoreSettings): more
    # gives a machine with spare cores for the database more appends/s, at the cost of the log
    # followers' lag (each running batch can hold the others' rows behind the horizon).
    store_batches_in_flight: int = 2
    # A snapshot of the in-memory state at most this often (router.snapshots); 0: only when
    # the server stops cleanly.
    snapshot_every_s: int = 300
    # An agent who lets this many offers in a row expire unanswered is set away (TimerSettings).
    max_missed_offers: int = 3
    # How long a dropped desk may take to reconnect before its offers go to others.
    disconnect_grace_s: int = 15

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "database_url": env.get("DATABASE_URL") or None,
            "var_dir": Path(env.get("ROUTER_VAR_DIR", "var")),
            "admin_token": env.get("ROUTER_ADMIN_TOKEN") or None,
            "gateway_secrets_file": Path(env["ROUTER_GATEWAY_SECRETS"]) if env.get("ROUTER_GATEWAY_SECRETS") else None,
            "log_level": env.get("ROUTER_LOG_LEVEL", "INFO"),
            "event_loop": env.get("ROUTER_EVENT_LOOP", "uvloop"),
            "store_batches_in_flight": _whole_number(env, "ROUTER_STORE_BATCHES_IN_FLIGHT", 2, 1, 16),
            "snapshot_every_s": _whole_number(env, "ROUTER_SNAPSHOT_EVERY_S", 300, 0, 86_400),
            "snapshot_key": env.get("ROUTER_SNAPSHOT_KEY") or None,
            "max_missed_offers": _whole_number(env, "ROUTER_MAX_MISSED_OFFERS", 3, 1, 100),
            "disconnect_grace_s": _whole_number(env, "ROUTER_DISCONNECT_GRACE_S", 15, 1, 3_600),
        }
        if values["snapshot_key"] is not None and len(str(values["snapshot_key"])) < 16:
            raise ValueError("ROUTER_SNAPSHOT_KEY must be 16 characters or more")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {raw[:40]!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Credentials:
    admin_token: str
    gateway_secrets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Signs the state snapshots (router.snapshots); None: no snapshots, every start replays the log.
    snapshot_key: bytes | None = None


def load_credentials(settings: Settings) -> Credentials:
    """The admin token and the gateways' secrets, created in var/ on first start."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    token = settings.admin_token or _read_or_create(settings.var_dir / "admin-token", lambda: secrets.token_urlsafe(32))
    secrets_file = settings.gateway_secrets_file or settings.var_dir / "gateway-secrets.json"
    if not secrets_file.exists():
        _write_private(secrets_file, json.dumps({g: secrets.token_hex(32) for g in GATEWAYS}, indent=2) + "\n")
    gateway_secrets = parse_gateway_secrets(json.loads(secrets_file.read_text()))
    missing = [g for g in GATEWAYS if g not in gateway_secrets]
    if missing:
        log.warning("no secret for the %s gateway(s) in %s: their events are refused (401)",
                    ", ".join(missing), secrets_file)
    snapshot_key = settings.snapshot_key or _read_or_create(settings.var_dir / "snapshot-key",
                                                            lambda: secrets.token_urlsafe(32))
    return Credentials(token, gateway_secrets, snapshot_key.encode())


def parse_gateway_secrets(raw: object) -> dict[str, tuple[str, ...]]:
    """{"phone": "s1"} or {"phone": ["new", "old"]} (two valid during a rotation)."""
    if not isinstance(raw, dict):
        raise ValueError("gateway secrets must be a JSON object of gateway -> secret")
    out: dict[str, tuple[str, ...]] = {}
    for gateway, value in raw.items():
        values = (value,) if isinstance(value, str) else tuple(value)
        if gateway not in GATEWAYS or not values or not all(isinstance(v, str) and len(v) >= 16 for v in values):
            raise ValueError(f"gateway secrets: {gateway!r} needs one or more secrets of 16+ characters")
        out[gateway] = values
    return out


def _read_or_create(path: Path, make: object) -> str:
    if not path.exists():
        _write_private(path, make() + "\n")  # type: ignore[operator]
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

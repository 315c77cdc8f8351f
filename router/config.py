"""Settings, read once from the environment by the composition root (never at import)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable, ItemsView, Iterator, Mapping
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
    # Signed events each gateway may post per second in this process, and the burst above it
    # (HTTP 429 with Retry-After beyond that).
    gateway_rate_per_s: int = 5_000
    gateway_burst: int = 10_000
    # Secrets given in the environment (ROUTER_GATEWAY_SECRET_PHONE="new,old"): they take the
    # place of the secrets file's entry for that gateway.
    gateway_secrets_env: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
            "gateway_rate_per_s": _whole_number(env, "ROUTER_GATEWAY_RATE_PER_S", 5_000, 1, 1_000_000),
            "gateway_burst": _whole_number(env, "ROUTER_GATEWAY_BURST", 10_000, 1, 10_000_000),
            "gateway_secrets_env": _secrets_from_env(env),
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


def _secrets_from_env(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    raw = {g: env[name] for g in GATEWAYS if (name := f"ROUTER_GATEWAY_SECRET_{g.upper()}") in env}
    try:
        return parse_gateway_secrets({g: [part.strip() for part in value.split(",")] for g, value in raw.items()})
    except ValueError as exc:
        raise ValueError(f"ROUTER_GATEWAY_SECRET_<GATEWAY>: {exc}") from None


@dataclass(frozen=True, slots=True)
class Credentials:
    admin_token: str
    # A plain mapping, or a GatewaySecrets that follows its file (rotation without a restart).
    gateway_secrets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Signs the state snapshots (router.snapshots); None: no snapshots, every start replays the log.
    snapshot_key: bytes | None = None


def load_credentials(settings: Settings) -> Credentials:
    """The admin token and the gateways' secrets, created in var/ on first start."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    token = settings.admin_token or _read_or_create(settings.var_dir / "admin-token", lambda: secrets.token_urlsafe(32))
    secrets_file = settings.gateway_secrets_file or settings.var_dir / "gateway-secrets.json"
    if not secrets_file.exists():
        fresh = {g: secrets.token_hex(32) for g in GATEWAYS if g not in settings.gateway_secrets_env}
        _write_private(secrets_file, json.dumps(fresh, indent=2) + "\n")
    gateway_secrets = GatewaySecrets(secrets_file, settings.gateway_secrets_env)
    missing = [g for g in GATEWAYS if g not in gateway_secrets]
    if missing:
        log.warning("no secret for the %s gateway(s) in %s: their events are refused (401)",
                    ", ".join(missing), secrets_file)
    snapshot_key = settings.snapshot_key or _read_or_create(settings.var_dir / "snapshot-key",
                                                            lambda: secrets.token_urlsafe(32))
    return Credentials(token, gateway_secrets, snapshot_key.encode())


class GatewaySecrets(Mapping[str, tuple[str, ...]]):
    """The gateways' secrets as the secrets file says now, with the environment's on top.

    An admin rotates a gateway's key by writing both secrets into the file, then (once the gateway
    signs with the new one) only the new one: every server instance picks the file up within
    `check_every_s`, no restart. The file is read again only when its size, modification time or
    inode changed (one stat per check). A file that cannot be read or parsed (an editor halfway
    through writing it, a typo) leaves the secrets as they were, and says so in the log once per
    problem: a broken edit must not lock every gateway out.
    """

    def __init__(self, path: Path, overrides: Mapping[str, tuple[str, ...]] | None = None, *,
                 check_every_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._overrides = dict(overrides or {})
        self._check_every_s = check_every_s
        self._clock = clock
        self._seen: tuple[int, int, int] | None = None
        self._problem: str | None = None
        self._checked_at = clock()
        self._current: dict[str, tuple[str, ...]] = {}
        self._reload(initial=True)

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked_at >= self._check_every_s:
            self._checked_at = now
            self._reload(initial=False)

    def _reload(self, *, initial: bool) -> None:
        try:
            stat = self._path.stat()
            seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if seen == self._seen:
                return
            from_file = parse_gateway_secrets(json.loads(self._path.read_text()))
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            if initial:
                raise ValueError(f"gateway secrets file {self._path}: {exc}") from None
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._problem:  # once per problem, not once a second
                self._problem = problem
                log.error("gateway secrets file %s cannot be used (%s); the secrets loaded before stay in force",
                          self._path, problem)
            return
        self._seen, self._problem = seen, None
        current = {**from_file, **self._overrides}
        if not initial and current != self._current:
            changed = sorted(g for g in GATEWAYS if current.get(g) != self._current.get(g))
            log.warning("gateway secrets reloaded from %s: the %s gateway(s) changed", self._path, ", ".join(changed))
        self._current = current

    def __getitem__(self, gateway: str) -> tuple[str, ...]:
        self._refresh()
        return self._current[gateway]

    def __iter__(self) -> Iterator[str]:
        self._refresh()
        return iter(dict(self._current))

    def items(self) -> ItemsView[str, tuple[str, ...]]:
        self._refresh()
        return dict(self._current).items()  # one version of the file, even if it changes meanwhile

    def __len__(self) -> int:
        self._refresh()
        return len(self._current)


def parse_gateway_secrets(raw: object) -> dict[str, tuple[str, ...]]:
    """{"phone": "s1"} or {"phone": ["new", "old"]} (two valid during a rotation)."""
    if not isinstance(raw, dict):
        raise ValueError("gateway secrets must be a JSON object of gateway -> secret")
    out: dict[str, tuple[str, ...]] = {}
    for gateway, value in raw.items():
        values = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, list) else ()
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

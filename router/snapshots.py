"""Snapshots of the router's in-memory state: a restart replays the log's tail, not all of it.

The state a server builds from the log (router state, customer directory and history) is
pickled, as of the cursor of the last event applied, into the store's `snapshots` table;
at start-up the newest usable snapshot is restored and the log is read from its cursor on.
A snapshot is only ever a shortcut: when there is none, or it cannot be used, the whole
log is replayed as before, and the result is the same state.

Why it can be trusted:
- It is signed (HMAC-SHA256 with a key kept outside the database, `var/snapshot-key` or
  ROUTER_SNAPSHOT_KEY) over its version, cursor and body. Unpickling runs code, so a body
  is unpickled only when the signature holds: write access to the database does not become
  code execution in the server, and a cursor cannot be moved to replay events twice.
- Its version is a digest of this code's source (and the Python version): after any upgrade
  the old snapshot is ignored and the log replayed once, so an old layout is never read
  into new classes.
- It is taken between two batches of the log follower, so the state is exactly "every
  event up to the cursor" (events an instance applied early, such as an agent's token, are
  skipped by their stream version when the tail delivers them again, as they are live).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from eventstore import LogCursor, Snapshot

log = logging.getLogger(__name__)

_PACKAGES = ("router", "policies", "channels", "eventstore")
_SIGNATURE_BYTES = 32


class Snapshottable(Protocol):
    """A part of the in-memory state that can be saved and put back."""

    def snapshot_state(self) -> object: ...

    def restore_state(self, saved: Any) -> None: ...


@cache
def code_version() -> str:
    """A digest of the source the pickled classes come from, and of the interpreter."""
    digest = hashlib.sha256(f"{sys.version_info[:2]}|{pickle.HIGHEST_PROTOCOL}".encode())
    root = Path(__file__).resolve().parent.parent
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class SnapshotCodec:
    key: bytes
    version: str

    @property
    def key_id(self) -> str:
        """Names the key without revealing it: instances with another key keep their own row."""
        return hashlib.sha256(b"snapshot-key-id:" + self.key).hexdigest()[:12]

    def encode(self, parts: Mapping[str, Snapshottable], cursor: LogCursor) -> Snapshot:
        body = pickle.dumps({name: part.snapshot_state() for name, part in parts.items()},
                            protocol=pickle.HIGHEST_PROTOCOL)
        return Snapshot(cursor, self.version, self._sign(cursor, body) + body)

    def decode(self, snapshot: Snapshot) -> dict[str, Any] | None:
        """The saved parts, or None when the snapshot is of other code or not signed by our key."""
        if snapshot.version != self.version:
            log.info("state snapshot is from other code (%s); replaying the log", snapshot.version)
            return None
        signature, body = snapshot.body[:_SIGNATURE_BYTES], snapshot.body[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(snapshot.cursor, body)):
            log.warning("state snapshot's signature does not match this server's snapshot key "
                        "(changed by hand, or another key); ignoring it and replaying the log")
            return None
        saved = pickle.loads(body)  # noqa: S301  (signed by our own key: see the module's docstring)
        return saved if isinstance(saved, dict) else None

    def _sign(self, cursor: LogCursor, body: bytes) -> bytes:
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        mac.update(f"{self.version}|{cursor.tx_id}|{cursor.position}|".encode())
        mac.update(body)
        return mac.digest()


@dataclass(frozen=True, slots=True)
class SnapshotSettings:
    key: bytes
    every_s: float = 300.0  # while running, this often when anything happened (0: only at a clean stop)

    def codec(self) -> SnapshotCodec:
        return SnapshotCodec(self.key, code_version())

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

import asyncio
import hashlib
import hmac
import logging
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from eventstore import LogCursor, Snapshot

log = logging.getLogger(__name__)

_PACKAGES = ("router", "policies", "channels", "eventstore")
_SIGNATURE_BYTES = 32
# The longest an encoding process may take before it is ended (measured: 17.5 s with a
# million customers); past it, it is stuck (see encode_aside) and the snapshot is skipped.
CHILD_LIMIT_S = 600.0


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

    def encode(self, parts: Mapping[str, Snapshottable], cursor: LogCursor, *, scope: str = "") -> Snapshot:
        body = _pickled(parts)
        return Snapshot(cursor, self.version, self._sign(cursor, body, scope) + body)

    def decode(self, snapshot: Snapshot, *, scope: str = "") -> dict[str, Any] | None:
        """The saved parts, or None when the snapshot is of other code, not signed by our key,
        or signed for another `scope` (the name it is kept under: another routing domain's)."""
        if snapshot.version != self.version:
            log.info("state snapshot is from other code (%s); replaying the log", snapshot.version)
            return None
        signature, body = snapshot.body[:_SIGNATURE_BYTES], snapshot.body[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(snapshot.cursor, body, scope)):
            log.warning("state snapshot's signature does not match this server's snapshot key "
                        "(changed by hand, another key, or kept under another name); ignoring it and "
                        "replaying the log")
            return None
        saved = pickle.loads(body)  # noqa: S301  (signed by our own key: see the module's docstring)
        return saved if isinstance(saved, dict) else None

    def mac(self, cursor: LogCursor, scope: str = "") -> Any:
        """The HMAC over everything a snapshot is bound to but its body (fed to it next)."""
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        # Length-prefixed: no two (scope, version, cursor) lead to the same bytes.
        mac.update(f"{len(scope)}:{scope}|{self.version}|{cursor.tx_id}|{cursor.position}|".encode())
        return mac

    def _sign(self, cursor: LogCursor, body: bytes, scope: str = "") -> bytes:
        mac = self.mac(cursor, scope)
        mac.update(body)
        return bytes(mac.digest())


def _pickled(parts: Mapping[str, Snapshottable]) -> bytes:
    return pickle.dumps({name: part.snapshot_state() for name, part in parts.items()},
                        protocol=pickle.HIGHEST_PROTOCOL)


def encode_aside(codec: SnapshotCodec, parts: Mapping[str, Snapshottable],
                 cursor: LogCursor, *, scope: str = "") -> Callable[[], Awaitable[Snapshot]]:
    """Take the snapshot now, encode it away from the event loop; await the result later.

    Why a fork: pickling the state holds the interpreter for as long as it takes (measured:
    ~0.2 s with 10,000 agents, seconds with millions of customers), and a thread would not
    help (the GIL) and could not read a state the loop goes on changing. A forked child sees
    the state exactly as it is at the fork, copy-on-write, pickles it on the other core and
    writes it to a pipe, then leaves with os._exit (it runs nothing of the parent's: no event
    loop, no atexit). The parent signs what it reads (in a thread: hashing lets the GIL go)
    and pays only for the fork itself. Where there is no fork, the snapshot is encoded here,
    in the loop, as before. When the fork or the child fails, the result raises RuntimeError:
    that snapshot is skipped, and the next one is taken as usual; taking it never raises
    (it runs inside the log follower's batch, which must not fail over a shortcut).

    Why the child does so little: only the forking thread goes on in it, so a lock another
    thread held at the fork stays held there for good. The child pickles plain data and
    writes to a pipe; the signature (OpenSSL, with locks of its own) is made in the parent;
    and should the child hang all the same, an alarm ends it after CHILD_LIMIT_S. It closes
    every descriptor it inherited but its pipe: a socket the parent closes (a desk, the
    listening port, the database session holding the leader's advisory lock, all of them
    when the parent is killed) must not stay open while the child pickles."""
    if not hasattr(os, "fork"):
        snapshot = codec.encode(parts, cursor, scope=scope)
        return lambda: _ready(snapshot)
    try:
        read_end, write_end = os.pipe()
    except OSError as exc:
        return _failed(exc)
    try:
        with warnings.catch_warnings():  # 3.12+ warns of forking with threads: the child only pickles
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError as exc:  # e.g. ENOMEM, EAGAIN: no snapshot this time, the follower goes on
        os.close(read_end)
        os.close(write_end)
        return _failed(exc)
    if pid == 0:  # the child: no return from here
        code = 1
        try:
            signal.alarm(max(1, int(CHILD_LIMIT_S)))
            _leave_the_parents_signals()
            _leave_the_parents_descriptors(write_end)
            view = memoryview(_pickled(parts))
            while view:
                view = view[os.write(write_end, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)

    async def result() -> Snapshot:
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, _read_signed, read_end, codec.mac(cursor, scope))
        _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
        if status != 0 or len(body) <= _SIGNATURE_BYTES:
            log.warning("state snapshot: the encoding process failed (status %d); not saved this time", status)
            raise RuntimeError("the snapshot's encoding process failed")
        return Snapshot(cursor, codec.version, body)

    return result


def _failed(exc: OSError) -> Callable[[], Awaitable[Snapshot]]:
    log.warning("state snapshot: no process to encode it (%s); not saved this time", exc)

    async def result() -> Snapshot:
        raise RuntimeError(f"the snapshot's encoding process could not start: {exc}")

    return result


def _leave_the_parents_descriptors(keep: int) -> None:
    """In the child: close every inherited descriptor but stdio and `keep` (closing a copy
    leaves the parent's open; only the parent's own close ends a connection then)."""
    try:
        limit = os.sysconf("SC_OPEN_MAX")
    except (AttributeError, ValueError, OSError):
        limit = -1
    os.closerange(3, keep)
    os.closerange(keep + 1, limit if limit > keep else 1 << 20)


def _leave_the_parents_signals() -> None:
    """In the child: a signal must not reach the parent's event loop through the wake-up fd
    the two share, and a stop signal (Ctrl-C reaches the whole process group) ends the child."""
    try:
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            signal.signal(number, signal.SIG_DFL)
    except ValueError:  # not the main thread: no wake-up fd or handler was ours to share
        pass


async def _ready(snapshot: Snapshot) -> Snapshot:
    return snapshot


def _read_signed(fd: int, mac: Any) -> bytes:
    """Read the child's pickle to its end and return it signed (signature first)."""
    chunks: list[bytes] = [b""]
    try:
        while chunk := os.read(fd, 1 << 20):
            mac.update(chunk)
            chunks.append(chunk)
    finally:
        os.close(fd)
    if len(chunks) == 1:
        return b""
    chunks[0] = mac.digest()
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class SnapshotSettings:
    key: bytes
    every_s: float = 300.0  # while running, this often when anything happened (0: only at a clean stop)

    def codec(self) -> SnapshotCodec:
        return SnapshotCodec(self.key, code_version())

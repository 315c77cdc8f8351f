"""Snapshots, audited: the forked encoder must never stop the log follower, hold the parent's
connections, or hang; a snapshot names what it is of; restored equals replayed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import threading
import time
from typing import Any

import pytest

from eventstore import LogCursor, MemoryEventStore
from router import snapshots
from router.snapshots import SnapshotCodec, SnapshotSettings, encode_aside
from tests.unit.router.test_snapshots import KEY, Part, Slow, _fill, _router


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_a_fork_that_fails_skips_the_snapshot_without_raising_or_leaking(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    before = _open_fds()
    encoded = encode_aside(SnapshotCodec(KEY, "v1"), {"a": Part([1])}, LogCursor(1, 1))
    with pytest.raises(RuntimeError):
        await encoded()
    assert _open_fds() <= before  # the pipe is closed again


async def test_the_follower_goes_on_when_a_snapshot_cannot_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot is a shortcut: a fork refused (ENOMEM with a big state) must not fail the
    follower's batch, which would hold the state back (retried after 1, 2, 4... 30 s)."""
    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    store = MemoryEventStore()
    router, _ = _router(store, snapshots=SnapshotSettings(KEY, every_s=0.01))
    await router.start()
    try:
        await asyncio.sleep(0.02)
        await _fill(store, lambda log: log.contact("c1"))  # applied, then a snapshot is due: the fork fails
        await asyncio.sleep(0.1)
        await _fill(store, lambda log: log.contact("c2"))
        deadline = time.monotonic() + 0.6
        while "c2" not in router.state.contacts and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert "c2" in router.state.contacts, "the follower is stuck retrying a batch over a failed snapshot"
    finally:
        await router.stop()


async def test_the_encoding_process_keeps_none_of_the_parents_connections() -> None:
    """The child must not keep the parent's sockets open: a connection the parent closes (a
    desk, the listening port, the database session holding the leader's advisory lock, or all
    of them when the parent is killed) must close now, not when the child is done pickling."""
    ours, peer = socket.socketpair()
    try:
        encoded = encode_aside(SnapshotCodec(KEY, "v1"), {"a": Part(Slow([1, 2]))}, LogCursor(1, 1))
        ours.close()
        peer.settimeout(0.3)
        try:
            got = peer.recv(1)
        except TimeoutError:
            got = None
        assert got == b"", "the peer saw no end of the connection: the encoding process still holds it"
        await encoded()
    finally:
        peer.close()


async def test_an_encoding_process_stuck_on_a_lock_held_at_the_fork_fails_in_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock held by another thread at the fork is held for ever in the child (that thread is
    not there): the child must be ended, and the snapshot skipped, not awaited for ever (the
    server's stop() awaits it)."""
    monkeypatch.setattr(snapshots, "CHILD_LIMIT_S", 1)
    lock = threading.Lock()

    class Locked(Part):
        def snapshot_state(self) -> Any:
            with lock:
                return self.value

    lock.acquire()
    releaser = threading.Timer(0.2, lock.release)  # the parent's holder lets go soon; the child's never does
    releaser.start()
    try:
        encoded = encode_aside(SnapshotCodec(KEY, "v1"), {"a": Locked([1])}, LogCursor(1, 1))
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(encoded(), 10)
    finally:
        releaser.join()


def test_a_snapshot_is_bound_to_the_name_it_was_saved_under() -> None:
    """Another domain's snapshot (same key, same code) copied into this domain's row must not
    be restored: its state is another domain's."""
    codec = SnapshotCodec(KEY, "v1")
    snapshot = codec.encode({"a": Part([1])}, LogCursor(7, 42), scope="router-state:eu:k")
    assert codec.decode(snapshot, scope="router-state:eu:k") == {"a": [1]}
    assert codec.decode(snapshot, scope="router-state:default:k") is None


async def test_a_snapshot_encoded_aside_is_bound_to_its_name_too() -> None:
    codec = SnapshotCodec(KEY, "v1")
    snapshot = await encode_aside(codec, {"a": Part([1])}, LogCursor(7, 42), scope="router-state:eu:k")()
    assert codec.decode(snapshot, scope="router-state:eu:k") == {"a": [1]}
    assert codec.decode(snapshot, scope="router-state:default:k") is None
    assert codec.decode(dataclasses.replace(snapshot, cursor=LogCursor(7, 41)), scope="router-state:eu:k") is None

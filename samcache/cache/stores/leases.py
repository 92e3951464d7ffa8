"""Writer leases on an object store: the locks a bucket can hold, built from S3's conditional puts.

A lease is one small JSON object beside the store (``.<name>.<split>.lease``). Taking it is a put with
``If-None-Match: *`` (exactly one of two racing writers succeeds); renewing and releasing are a put and a
delete with ``If-Match: <etag>`` (a writer that lost its lease cannot overwrite the new holder's). Expiry is
judged on the server's clock (the object's ``Last-Modified`` against the response's ``Date``), so machines
with skewed clocks agree. A writer killed on this host is seen at once (its pid is gone); one killed
elsewhere holds the lease until it expires, ``LEASE_S`` after its last renewal, and the next command then
takes it over.
"""

from __future__ import annotations

import email.utils
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from samcache.errors import SamcacheError

LEASE_S = 60.0  # a holder renews every LEASE_S / 3; a killed holder elsewhere blocks its split this long at most
HOST = socket.gethostname()


class Taken(Exception):
    """Someone else's conditional put won (HTTP 412)."""


class ObjectOps:
    """The four conditional operations a lease needs, on one bucket (``stores/s3.py`` implements them)."""

    def create(self, key: str, body: bytes) -> str:
        """Put only if absent; returns the new ETag, raises ``Taken`` if the key exists."""
        raise NotImplementedError

    def replace(self, key: str, body: bytes, etag: str) -> str:
        """Put only if the object still has ``etag``; returns the new ETag, raises ``Taken`` otherwise."""
        raise NotImplementedError

    def delete(self, key: str, etag: str) -> None:
        """Delete only if the object still has ``etag`` (silently nothing if it is gone or changed)."""
        raise NotImplementedError

    def read(self, key: str) -> tuple[dict, str, float] | None:
        """(content, etag, age in seconds on the server's clock), or None if absent."""
        raise NotImplementedError


def server_age(last_modified, date_header: str | None) -> float:
    """Seconds between an object's Last-Modified and the server's Date (falls back to this machine's clock)."""
    now = email.utils.parsedate_to_datetime(date_header).timestamp() if date_header else time.time()
    return max(0.0, now - last_modified.timestamp())


@dataclass
class Holder:
    owner: str
    host: str
    pid: int
    purpose: str
    lease_s: float

    @classmethod
    def me(cls, purpose: str) -> "Holder":
        return cls(uuid.uuid4().hex, HOST, os.getpid(), purpose, LEASE_S)

    def body(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @classmethod
    def parse(cls, content: dict) -> "Holder":
        return cls(**{k: content.get(k) for k in ("owner", "host", "pid", "purpose")},
                   lease_s=float(content.get("lease_s", LEASE_S)))

    def dead_here(self) -> bool:
        """A holder on this host whose process is gone (killed): its lease is stale now, not after expiry."""
        if self.host != HOST or not isinstance(self.pid, int):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class Lease:
    """One held lease: renewed by a daemon thread until ``release``."""

    def __init__(self, ops: ObjectOps, key: str, holder: Holder, etag: str):
        self.ops, self.key, self.holder, self.etag = ops, key, holder, etag
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"samcache-lease-{key}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.holder.lease_s / 3):
            try:
                self.etag = self.ops.replace(self.key, self.holder.body(), self.etag)
            except Taken:
                self.lost = True  # expired while this process stalled, and another took it over
                return
            except Exception:
                continue  # a network blip: try again before the lease runs out

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if not self.lost:
            self.ops.delete(self.key, self.etag)


def take(ops: ObjectOps, key: str, purpose: str, busy_message, wait_s: float = 0.0) -> Lease:
    """Take the lease at ``key`` (waiting up to ``wait_s`` for a live holder); ``busy_message(holder, age)`` is
    the one line a second writer gets."""
    me = Holder.me(purpose)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return Lease(ops, key, me, ops.create(key, me.body()))
        except Taken:
            pass
        found = ops.read(key)
        if found is None:
            continue  # released between our put and our read
        content, etag, age = found
        holder = Holder.parse(content)
        if age >= holder.lease_s or holder.dead_here():  # HTTP dates count whole seconds
            try:
                return Lease(ops, key, me, ops.replace(key, me.body(), etag))
            except Taken:
                continue  # another command took it over first: look again
        if time.monotonic() >= deadline:
            raise SamcacheError(busy_message(holder, age))
        time.sleep(0.5)


def held(ops: ObjectOps, key: str) -> Holder | None:
    """The live holder of the lease at ``key``, if any."""
    found = ops.read(key)
    if found is None:
        return None
    content, _, age = found
    holder = Holder.parse(content)
    return None if age >= holder.lease_s or holder.dead_here() else holder

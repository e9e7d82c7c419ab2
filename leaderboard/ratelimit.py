"""Rate limits shared by every server process: fixed windows counted in the database or Redis.

A request is counted under each of its keys (the client address, and the whole token hashed, so
distinct guesses from one address are limited as one client); it is refused when any key is over
its limit. Nothing is kept in a process's memory: the counters live in the ``rate_hits`` table
(old windows are deleted as new ones start) or in Redis keys that expire with their window, so
memory stays bounded however many clients come.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from leaderboard.models import RateHit


class RateLimiter(Protocol):
    """Counts requests per key in fixed windows."""

    def hit(self, keys: Sequence[str], limit: int, window_s: int) -> float | None:
        """Count one request under every key; None if allowed, else seconds until it would be."""
        ...


def client_key(kind: str, value: str) -> str:
    """A bounded-length key: ``kind`` plus the sha256 of ``value`` (tokens are never stored)."""
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:40]}"


def _window(window_s: int, now: float) -> tuple[int, float]:
    """The current window's number and the seconds left in it."""
    number = int(now // window_s)
    return number, (number + 1) * window_s - now


class DatabaseRateLimiter:
    """Counters in the ``rate_hits`` table (SQLite or PostgreSQL), one upsert per key."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._pruned: int | None = None
        self._lock = threading.Lock()

    def hit(self, keys: Sequence[str], limit: int, window_s: int) -> float | None:
        number, left = _window(window_s, time.time())
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        over = False
        with self.engine.begin() as conn:
            for key in keys:
                statement = (
                    dialect.insert(RateHit)
                    .values(key=key, window=number, count=1)
                    .on_conflict_do_update(
                        index_elements=[RateHit.key, RateHit.window],
                        set_={"count": RateHit.count + 1},
                    )
                    .returning(RateHit.count)
                )
                over |= conn.execute(statement).scalar_one() > limit
            with self._lock:
                prune = self._pruned != number
                self._pruned = number
            if prune:  # once per window per process: the table holds two windows at most
                conn.execute(delete(RateHit).where(RateHit.window < number - 1))
        return left if over else None


class RedisRateLimiter:
    """Counters in Redis: ``INCR`` of a key per window, expiring after the window."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def hit(self, keys: Sequence[str], limit: int, window_s: int) -> float | None:
        number, left = _window(window_s, time.time())
        pipe = self.client.pipeline()
        for key in keys:
            name = f"grader:rate:{key}:{number}"
            pipe.incr(name)
            pipe.expire(name, window_s * 2)
        counts = pipe.execute()[::2]
        return left if any(c > limit for c in counts) else None

"""One active beat, however many are started: a scheduler that acts only while
it holds a lock, so a standby beat can wait beside it and take over when it dies.

    celery -A config beat -S config.beat.LockedScheduler

The lock lives in Redis when REDIS_URL is set (every node of a cluster shares
it): a key set only if absent, with a time to live (BEAT_LOCK_TTL_SECONDS, 30 by
default) that the holder renews every few seconds; if the holder dies, the key
expires and a standby takes it at its next try, well within a minute. Without
Redis (the embedded `make run`), the lock is a file lock under var/, which the
operating system releases the moment its holder dies. The schedule is kept in
memory: after a takeover, sweeps that are due run at once (they are all safe to
run twice).
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path

from celery.beat import Scheduler
from django.conf import settings

log = logging.getLogger(__name__)

# How often a standby tries for the lock, and a holder renews it.
TRY_EVERY_SECONDS = 5.0


class _RedisLock:
    KEY = "parkspot:beat-lock"

    def __init__(self, url: str, ttl: float):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.token = f"{os.getpid()}:{uuid.uuid4().hex}"
        self.ttl_ms = int(ttl * 1000)

    def hold(self) -> bool:
        """Take the lock, or keep it if ours; False while another beat has it."""
        renew = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
        )
        if self.client.eval(renew, 1, self.KEY, self.token, self.ttl_ms):
            return True
        return bool(self.client.set(self.KEY, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> None:
        release = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end"
        )
        self.client.eval(release, 1, self.KEY, self.token)


class _FileLock:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a+")
        self.held = False

    def hold(self) -> bool:
        if not self.held:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self.held = True
        return True

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.held = False


def _lock():
    ttl = float(os.environ.get("BEAT_LOCK_TTL_SECONDS", "30"))
    if settings.REDIS_URL:
        return _RedisLock(settings.REDIS_URL, ttl)
    path = os.environ.get("BEAT_LOCK_FILE") or str(settings.VAR_DIR / "beat.lock")
    return _FileLock(Path(path))


class LockedScheduler(Scheduler):
    """Celery's in-memory scheduler, acting only while it holds the beat lock."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        self._lock = _lock()
        self._active: bool | None = None  # not known until the first try

    def tick(self, *args, **kwargs) -> float:
        try:
            holding = self._lock.hold()
        except Exception:  # the lock's store is unreachable: act only if sure
            log.exception("Beat lock unreachable; not sending")
            holding = False
        if holding != self._active:
            self._active = holding
            log.warning(
                "Beat lock %s",
                "taken: this beat sends the schedule"
                if holding
                else "held by another beat: standing by",
            )
        if not holding:
            return TRY_EVERY_SECONDS
        return min(super().tick(*args, **kwargs), TRY_EVERY_SECONDS)

    def close(self) -> None:
        try:
            self._lock.release()
        finally:
            super().close()

"""Worker heartbeats in Redis: each worker process writes one expiring key per queue it consumes
(`distillery:heartbeat:<queue>:<hostname>`); a missing key means that worker is gone. This module
owns the key schema; workers/ writes through `beat`, the health page reads through `live_workers`."""
import time

import redis
from django.conf import settings

QUEUES = ("gpu", "default", "beat")
_PREFIX = "distillery:heartbeat"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def beat(*, queue: str, hostname: str, client: redis.Redis | None = None) -> None:
    ttl = settings.WORKER_HEARTBEAT_SECONDS * 3
    (client or _client()).set(f"{_PREFIX}:{queue}:{hostname}", str(time.time()), ex=ttl)


def live_workers(*, client: redis.Redis | None = None) -> dict[str, list[str]]:
    """Returns {queue: [hostname, ...]} for every queue in QUEUES (empty list = nobody alive)."""
    client = client or _client()
    alive: dict[str, list[str]] = {q: [] for q in QUEUES}
    for key in client.scan_iter(match=f"{_PREFIX}:*", count=200):
        _, _, queue, hostname = key.decode().split(":", 3)
        alive.setdefault(queue, []).append(hostname)
    return alive

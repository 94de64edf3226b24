"""The Redis cache that every request reads (its session, its project membership), as ONE client
per process. Django's `caches[alias]` is per context, and under ASGI each request runs in a fresh
context, so it would build a client and open a Redis connection for every request (measured: 2.5 ms
of CPU per request). redis-py's client and connection pool are thread-safe.

The backend (SharedRedisCache, CACHES["shared"]) is Django's RedisCache, except that it keeps one
redis.Redis object per server: Django's client builds a new one (and its table of response
callbacks) for every cache operation, two to three per request on the annotation API.

Also the session engine (SESSION_ENGINE = "webapp.shared_cache"): Django's cached_db sessions,
on this client."""
from functools import cache

from django.contrib.sessions.backends import cached_db
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class _ReusedClient(RedisCacheClient):
    """RedisCacheClient handing out one redis.Redis per server (on that server's pool) instead of a new one per call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients.setdefault(index, self._client(connection_pool=self._pools[index]))
        return client


class SharedRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusedClient


@cache
def shared_cache():
    return caches.create_connection("shared")


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._cache = shared_cache()

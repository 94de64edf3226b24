"""Reads the state of every part the product depends on, for /healthz and the header badge."""
import asyncio
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from webapp.health import heartbeats


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:  # report, never raise: this is the health page
        return {"ok": False, "error": str(exc)}


def _check_redis() -> dict:
    try:
        heartbeats._client().ping()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": str(exc)}


async def _channel_roundtrip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await asyncio.wait_for(layer.receive(channel), timeout=2)
    if message.get("token") != token:
        raise RuntimeError("channel layer returned a foreign message")


def _check_channel_layer() -> dict:
    try:
        async_to_sync(_channel_roundtrip)()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": str(exc) or type(exc).__name__}


def health_report() -> dict:
    report = {"database": _check_database(), "redis": _check_redis(), "channel_layer": _check_channel_layer()}
    try:
        alive = heartbeats.live_workers()
    except Exception as exc:
        alive = {q: [] for q in heartbeats.QUEUES}
        report["redis"].setdefault("error", str(exc))
    report["workers"] = {q: {"ok": bool(hosts), "hosts": sorted(hosts)} for q, hosts in alive.items()}
    report["ok"] = all(part["ok"] for part in (report["database"], report["redis"], report["channel_layer"])) and all(
        w["ok"] for w in report["workers"].values()
    )
    return report


def down_queues() -> list[str]:
    """Queues with no live worker (or all of them when Redis itself is unreachable)."""
    try:
        alive = heartbeats.live_workers()
    except Exception:
        return list(heartbeats.QUEUES)
    return [q for q in heartbeats.QUEUES if not alive.get(q)]

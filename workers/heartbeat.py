"""Worker liveness: every worker process (and beat) beats a Redis key per queue it consumes from a
daemon thread, so /healthz and the header badge know which queues have a live worker even while
the gpu worker is busy for hours inside one task."""
import socket
import threading

from celery.signals import beat_init, worker_ready, worker_shutdown
from django.conf import settings

from webapp.health import heartbeats

_stop = threading.Event()


def _loop(queues: list[str], hostname: str) -> None:
    while not _stop.is_set():
        for queue in queues:
            try:
                heartbeats.beat(queue=queue, hostname=hostname)
            except Exception:  # Redis briefly away: keep trying, /healthz shows it meanwhile
                pass
        _stop.wait(settings.WORKER_HEARTBEAT_SECONDS)


def _start(queues: list[str], hostname: str) -> None:
    threading.Thread(target=_loop, args=(queues, hostname), name="heartbeat", daemon=True).start()


@worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    queues = [q.name for q in sender.app.amqp.queues.consume_from.values()]
    _start(queues, sender.hostname)


@beat_init.connect
def _on_beat_init(sender=None, **kwargs):
    _start(["beat"], f"beat@{socket.gethostname()}")


@worker_shutdown.connect
def _on_worker_shutdown(**kwargs):
    _stop.set()

"""Puts the list of queues without a live worker into every page, for the header's red badge."""
from webapp.health.selectors import down_queues


def worker_status(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"workers_down": down_queues()}

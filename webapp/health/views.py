"""/healthz: JSON state of every part; 200 only when all are up. Anonymous callers (load balancers,
the launcher) get the verdicts and worker counts; host names and error texts, which map the
deployment, only staff."""
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from webapp.health.selectors import health_report


@require_GET
def healthz(request):
    report = health_report()
    if not request.user.is_staff:
        report = _public(report)
    return JsonResponse(report, status=200 if report["ok"] else 503)


def _public(report: dict) -> dict:
    parts = {name: {"ok": report[name]["ok"]} for name in ("database", "redis", "channel_layer")}
    workers = {queue: {"ok": state["ok"], "count": len(state["hosts"])} for queue, state in report["workers"].items()}
    return {**parts, "workers": workers, "ok": report["ok"]}

"""The annotation page's JSON API, also what the benchmark drives: next item, submit, skip, undo.
Every endpoint needs the annotator role in the project; model names never leave the server and a
payload never carries other people's verdicts."""
import json

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET, require_POST

from webapp.annotation import events, selectors, services
from webapp.annotation.models import Comparison
from webapp.projects.models import Role
from webapp.projects.permissions import project_view


def _state(project, user, comparison) -> dict:
    counters = events.counters_recent(project.pk)
    progress = selectors.annotator_progress(project=project, annotator=user, pending=counters["pending"])
    return {"comparison": selectors.comparison_payload(comparison=comparison, annotator=user) if comparison else None,
            "progress": {"mine": progress["mine"], "available": progress["available"]}, "counters": counters,
            "can_undo": progress["can_undo"]}


def _body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationError("The request body is not JSON.") from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body


def _error(exc: ValidationError, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": " ".join(exc.messages)}, status=status)


@require_GET
@project_view(Role.ANNOTATOR)
def next_item(request, project):
    return JsonResponse(_state(project, request.user, selectors.comparison_next_for(project=project, annotator=request.user)))


@require_POST
@project_view(Role.ANNOTATOR)
def submit(request, project):
    try:
        body = _body(request)
        comparison = get_object_or_404(Comparison, project=project, pk=int(body.get("comparison", 0)))
        flags = body["flags"] if isinstance(body.get("flags"), list) else []
        judgement, created = services.judgement_record(
            comparison=comparison, annotator=request.user, ranking=body.get("ranking", []), both_bad=bool(body.get("both_bad")),
            rationale=str(body.get("rationale", "")), flags=flags, time_spent_ms=_ms(body.get("time_spent_ms")))
    except ValidationError as exc:
        return _error(exc, 409 if "already judged" in str(exc) else 400)
    except (TypeError, ValueError):
        return _error(ValidationError("comparison must be an id"))
    return JsonResponse({"judgement": judgement.pk, "created": created, "verdict": judgement.verdict}, status=201 if created else 200)


def _ms(value):
    try:
        return max(0, min(int(value), 86_400_000)) if value is not None else None
    except (TypeError, ValueError):
        return None


@require_POST
@project_view(Role.ANNOTATOR)
def skip(request, project):
    try:
        comparison = get_object_or_404(Comparison, project=project, pk=int(_body(request).get("comparison", 0)))
    except (ValidationError, TypeError, ValueError):
        return _error(ValidationError("comparison must be an id"))
    services.comparison_skip(comparison=comparison, annotator=request.user)
    return JsonResponse(_state(project, request.user, selectors.comparison_next_for(project=project, annotator=request.user)))


@require_POST
@project_view(Role.ANNOTATOR)
def undo(request, project):
    comparison = services.judgement_undo(project=project, annotator=request.user)
    if comparison is None:
        return JsonResponse({"error": "Nothing to undo (only your latest judgement of the last 30 minutes can be undone)."}, status=409)
    return JsonResponse({**_state(project, request.user, comparison), "undone": comparison.pk})

"""The annotation page's JSON API, also what the benchmark drives: next item, submit, skip, undo.
Every endpoint needs the annotator role in the project; model names never leave the server and a
payload never carries other people's verdicts. Submit and skip accept only comparisons the queue
offered to this annotator, and answer a guessed id exactly as a nonexistent one. Bodies are
untrusted: anything but a JSON object with the expected types is a 400, never a 500."""
import json

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from webapp import json_bounds
from webapp.annotation import events, selectors, services
from webapp.projects.models import Role
from webapp.projects.permissions import project_view

NOT_OFFERED = "No such comparison is on offer to you."
MAX_ID = 2**63 - 1  # bigint primary keys


def _state(project, user, comparison_id=None, *, lease_next=False) -> dict:
    counters = events.counters_recent(project.pk)
    state = selectors.annotation_state(project=project, annotator=user, comparison_id=comparison_id, pending=counters["pending"],
                                       lease_next=lease_next)
    return {**state, "counters": counters}


def _body(request) -> dict:
    try:
        body = json_bounds.loads(request.body or b"{}")
    except json.JSONDecodeError:
        raise ValidationError("The request body is not JSON.") from None
    except ValueError as exc:  # UnicodeDecodeError, nested too deep, NaN or a number out of range
        raise ValidationError(f"The request body is not JSON we store: {exc}.") from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.")
    return body


def _comparison_id(body: dict) -> int:
    value = body.get("comparison")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ValidationError("comparison must be a comparison id (a positive integer).")
    return value


def _ms(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # value != value: NaN
        return None
    return int(max(0, min(value, 86_400_000)))


def _error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_GET
@project_view(Role.ANNOTATOR)
def next_item(request, project):
    return JsonResponse(_state(project, request.user, lease_next=True))  # the lease and the payload: one SQL statement


@require_POST
@project_view(Role.ANNOTATOR)
def submit(request, project):
    try:
        body = _body(request)
        flags, rationale = body.get("flags"), body.get("rationale")
        written = services.judgement_submit(
            project=project, comparison_id=_comparison_id(body), annotator=request.user, ranking=body.get("ranking"),
            both_bad=body.get("both_bad") is True, rationale=rationale if isinstance(rationale, str) else "",
            flags=[f for f in flags if isinstance(f, str)] if isinstance(flags, list) else [], time_spent_ms=_ms(body.get("time_spent_ms")))
    except ValidationError as exc:
        message = " ".join(exc.messages)
        return _error(message, 409 if "already judged" in message else 400)
    if written is None:
        return _error(NOT_OFFERED, 404)
    judgement, created = written
    return JsonResponse({"judgement": judgement.pk, "created": created, "verdict": judgement.verdict}, status=201 if created else 200)


@require_POST
@project_view(Role.ANNOTATOR)
def skip(request, project):
    try:
        comparison = services.comparison_offered(project=project, comparison_id=_comparison_id(_body(request)), annotator=request.user)
    except ValidationError as exc:
        return _error(" ".join(exc.messages))
    if comparison is None:
        return _error(NOT_OFFERED, 404)
    services.comparison_skip(comparison=comparison, annotator=request.user)
    return JsonResponse(_state(project, request.user, selectors.comparison_next_id_for(project=project, annotator=request.user)))


@require_POST
@project_view(Role.ANNOTATOR)
def undo(request, project):
    comparison = services.judgement_undo(project=project, annotator=request.user)
    if comparison is None:
        return _error("Nothing to undo (only your latest judgement of the last 30 minutes can be undone).", 409)
    return JsonResponse({**_state(project, request.user, comparison.pk), "undone": comparison.pk})

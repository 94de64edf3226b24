"""Who is calling and what they may reach, for every API operation, plus the shapes every operation
shares (errors with a field path, pages, jobs).

Two ways in: a personal token (`Authorization: Bearer dst_...`; no CSRF, since a browser never sends
it by itself) or the browser's session (CSRF checked on writes, as on the pages). Roles are the
pages' own (webapp/projects/permissions.py: non-members 404, too low a role 403); a token narrows
them to its projects (others read as 404) and, when read-only, to GET. Each token is rate-limited
in the shared Redis cache (API_RATE_LIMIT requests a minute; 429 with Retry-After past it)."""
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import Schema
from ninja.security import HttpBearer, SessionAuth
from pydantic import ConfigDict

from webapp.api.tokens import token_authenticate, token_reaches
from webapp.projects.models import Project
from webapp.projects.permissions import _checked, membership_cached, role_of
from webapp.shared_cache import shared_cache

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_PAGE = 100_000


class ApiError(Exception):
    """An error answered as {"detail": [{"loc": [...], "msg": ..., "type": ...}]} with `status`."""

    def __init__(self, status: int, errors: list[dict], headers: dict | None = None):
        super().__init__(errors[0]["msg"] if errors else "")
        self.status, self.errors, self.headers = status, errors, headers or {}


def error(status: int, msg: str, loc=(), kind: str = "error", **headers) -> ApiError:
    return ApiError(status, [{"loc": list(loc), "msg": msg, "type": kind}], headers)


class TokenAuth(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request, key):
        token = token_authenticate(key or "")
        if token is None:
            return None
        _rate_limit(token.pk)
        request.user, request.api_token = token.user, token
        if request.method not in SAFE_METHODS and not token.can_write:
            raise error(403, "This token is read-only; create a read-write token to change anything.", kind="read_only")
        return token


class SessionCsrfAuth(SessionAuth):
    """The browser's session, with Django's CSRF check on unsafe methods (ninja's SessionAuth)."""

    def __call__(self, request):
        # A request that carries a token is judged by it alone; an anonymous one gets a 401, not a CSRF 403.
        if "HTTP_AUTHORIZATION" in request.META or not request.user.is_authenticated:
            return None
        request.api_token = None
        return super().__call__(request)


def _rate_limit(token_id: int) -> None:
    limit = settings.API_RATE_LIMIT
    if not limit:
        return
    window = int(time.time() // 60)
    key = f"api-rate:{token_id}:{window}"
    cache = shared_cache()
    cache.add(key, 0, 120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, 120)
        count = 1
    if count > limit:
        retry = 60 - int(time.time() % 60)
        raise error(429, f"Rate limit: {limit} requests a minute per token; retry in {retry} s.", kind="rate_limited",
                    **{"Retry-After": str(retry)})


def project_for(request, slug: str, needed: str) -> Project:
    """The project, after the pages' role check (404 not a member, 403 too low) and the token's scope."""
    user = request.user
    membership = None if user.is_superuser else membership_cached(user.pk, slug)
    project = membership.project if membership else Project.objects.filter(slug=slug).first()
    if project is None:
        raise error(404, "No such project.", kind="not_found")
    token = getattr(request, "api_token", None)
    if token is not None and not token_reaches(token, project):
        raise error(404, "No such project.", kind="not_found")  # outside the token's scope reads as absent
    try:
        request.role = _checked(membership.role if membership else role_of(user, project), project, needed)
    except Http404:
        raise error(404, "No such project.", kind="not_found") from None
    except PermissionDenied as exc:
        raise error(403, str(exc), kind="forbidden") from None
    return project


def form_errors(form, prefix=("body",), rename=None) -> ApiError:
    """A bound form's errors with field paths: loc = ["body", field, ...]; `rename(field) -> [parts]`
    maps a form field onto the request body's shape (e.g. "cfg:dckd.alpha" -> ["config", "dckd", "alpha"])."""
    errors = []
    for field, items in form.errors.get_json_data().items():
        parts = [] if field == "__all__" else (rename(field) if rename else [field])
        errors += [{"loc": [*prefix, *parts], "msg": item["message"], "type": item.get("code") or "invalid"}
                   for item in items]
    return ApiError(422, errors)


def validation_errors(exc) -> ApiError:
    """A service's ValidationError (a message, a list, or {field: messages}) with field paths."""
    if hasattr(exc, "error_dict"):
        return ApiError(422, [{"loc": ["body"] + ([] if f == "__all__" else [f]), "msg": m, "type": "invalid"}
                              for f, messages in exc.message_dict.items() for m in messages])
    return ApiError(422, [{"loc": ["body"], "msg": m, "type": "invalid"} for m in exc.messages])


def bound(form_class, data: dict, **kwargs):
    """The form the page uses, bound to the request body (None fields left out: the form's defaults);
    raises its errors as a 422."""
    form = form_class({k: v for k, v in data.items() if v is not None}, **kwargs)
    if not form.is_valid():
        raise form_errors(form)
    return form


def page_of(request, items, serialize, *, per_page: int = 50) -> dict:
    """One page of a list: ?page=N (from 1) and ?page_size (at most 200)."""
    try:
        page = min(max(1, int(request.GET.get("page", 1))), MAX_PAGE)
        size = min(max(1, int(request.GET.get("page_size", per_page))), 200)
    except ValueError:
        raise error(422, "page and page_size must be positive integers.", loc=("query", "page")) from None
    count = items.count() if hasattr(items, "count") and not isinstance(items, list) else len(items)
    rows = items[(page - 1) * size: page * size]
    return {"count": count, "page": page, "page_size": size, "next": page + 1 if page * size < count else None,
            "items": [serialize(row) for row in rows]}


class JobOut(Schema):
    """Every job kind's common fields (each kind adds its own)."""
    model_config = ConfigDict(extra="allow")
    id: int
    kind: str
    status: str
    done: int | None
    total: int | None
    stage: str
    error: str
    url: str


class Launched(Schema):
    """The answer to a long operation: the job as it stands, and the URL to poll."""
    job: JobOut
    url: str


class Page(Schema):
    """One page of a list; `next` is the next page's number, or null on the last."""
    model_config = ConfigDict(extra="allow")
    count: int
    page: int
    page_size: int
    next: int | None
    items: list[dict]


def job_out(job, url: str) -> dict:
    """Every job kind alike: status, progress (steps for a training run), stage and its API URL."""
    done_field, total_field = type(job).PROGRESS_FIELDS
    return {"id": job.pk, "kind": type(job)._meta.model_name, "status": job.status, "done": getattr(job, done_field),
            "total": getattr(job, total_field), "stage": job.stage, "error": job.error, "attempt": job.attempt,
            "cancel_requested": job.cancel_requested, "created_at": job.created_at, "finished_at": job.finished_at,
            "url": url}

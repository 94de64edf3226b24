"""Personal API tokens: create (the token is shown once), revoke, and authenticate a request's bearer
token. A token is `dst_` + 43 url-safe characters from `secrets` (256 random bits). Only its sha256
is stored: with that much entropy nobody can search the hash space, so a slow password hash (PBKDF2,
argon2) would add per-request cost and no protection; a plain digest also lets a request find its
token by an indexed equality lookup. A leaked database row therefore does not leak a usable token.
Last-used time is written at most once a minute per token, so reads do not turn into writes."""
import hashlib
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webapp.api.models import ApiToken
from webapp.projects.selectors import projects_for

PREFIX = "dst_"
LAST_USED_EVERY = timedelta(minutes=1)
MAX_TOKENS = 50  # per user; a page of them is plenty


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def token_create(*, user, name: str, projects=(), all_projects: bool = False, can_write: bool = False,
                 days_valid: int | None = 90) -> tuple[ApiToken, str]:
    """Returns (token row, the token itself): the only time the token is available in clear."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Name the token (what script or notebook uses it)."})
    allowed = set(projects_for(user=user).values_list("pk", flat=True))
    chosen = list(projects)
    if not all_projects and not chosen:
        raise ValidationError({"projects": "Choose at least one project, or all of them."})
    if any(p.pk not in allowed for p in chosen):
        raise ValidationError({"projects": "You can only scope a token to projects you are a member of."})
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_TOKENS:
        raise ValidationError(f"You have {MAX_TOKENS} live tokens; revoke some first.")
    raw = PREFIX + secrets.token_urlsafe(32)
    expires = timezone.now() + timedelta(days=days_valid) if days_valid else None
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name[:100], prefix=raw[:10], key_hash=token_digest(raw),
                                        can_write=can_write, all_projects=all_projects, expires_at=expires)
        token.projects.set(chosen)
    return token, raw


def token_revoke(*, user, token_id: int) -> bool:
    return bool(ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(revoked_at=timezone.now()))


def tokens_for(*, user):
    return ApiToken.objects.filter(user=user).prefetch_related("projects")


def token_authenticate(raw: str) -> ApiToken | None:
    """The live token (its user loaded) for a bearer value, or None: unknown, revoked, expired, or its
    user deactivated. Touches last_used_at (at most once a minute)."""
    if not raw.startswith(PREFIX) or len(raw) > 200:
        return None
    now = timezone.now()
    token = (ApiToken.objects.select_related("user").filter(key_hash=token_digest(raw), revoked_at__isnull=True)
             .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).first())
    if token is None or not token.user.is_active:
        return None
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_reaches(token: ApiToken, project) -> bool:
    return token.all_projects or token.projects.filter(pk=project.pk).exists()

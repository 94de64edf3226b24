"""Role checks for every view and socket. Roles nest: admin ⊃ researcher ⊃ annotator; a Django
superuser counts as admin everywhere. Non-members get 404 (a project's existence is not leaked),
members without the needed role get 403. Memberships are cached in the shared (Redis) cache and
cleared on every change (membership_cached): single rows by model signals, bulk writes (queryset
`.update()`, `bulk_update`, `bulk_create`) by `memberships_bulk_changed`, which Membership's queryset
sends."""
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from django.http import Http404
from django.shortcuts import get_object_or_404

from webapp.projects.models import ROLE_RANK, Membership, Project, Role, memberships_bulk_changed
from webapp.shared_cache import shared_cache


def role_of(user, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    membership = Membership.objects.filter(project=project, user=user).only("role").first()
    return membership.role if membership else None


def has_role(user, project: Project, needed: str) -> bool:
    role = role_of(user, project)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[needed]


def check_role(user, project: Project, needed: str) -> str:
    """Returns the user's role, or raises Http404 (not a member) / PermissionDenied (too low)."""
    return _checked(role_of(user, project), project, needed)


def _checked(role: str | None, project: Project, needed: str) -> str:
    if role is None:
        raise Http404("No such project.")
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        raise PermissionDenied(f"This needs the {needed} role in {project.name}; you are {role}.")
    return role


MEMBERSHIP_TTL = 60  # seconds; a safety net only (raw SQL): every change through the ORM clears the entry at once


def _membership_key(user_id: int, slug: str) -> str:
    return f"membership:{user_id}:{slug}"


def membership_cached(user_id: int, slug: str) -> Membership | None:
    """The user's membership of the project with this slug (its project loaded), from the shared
    cache: the check every project view and API call makes. Memberships and projects saved or
    deleted clear their entries (signals below) in every web process's view of the cache, and so do
    bulk writes through Membership's queryset; only raw SQL waits for MEMBERSHIP_TTL."""
    cache, key = shared_cache(), _membership_key(user_id, slug)
    cached = cache.get(key)
    if cached is not None:
        return cached or None  # False: known not to be a member
    membership = Membership.objects.select_related("project").filter(project__slug=slug, user_id=user_id).first()
    cache.set(key, membership or False, MEMBERSHIP_TTL)
    return membership


def _forget(keys: list[str]) -> None:
    """Clears cache entries now and, inside a transaction, once more after it commits: a request
    between the two would otherwise read the old, still committed row and cache it again."""
    if not keys:
        return
    shared_cache().delete_many(keys)
    if connection.in_atomic_block:
        transaction.on_commit(lambda: shared_cache().delete_many(keys))


@receiver(post_save, sender=Membership, dispatch_uid="membership-cache-save")
@receiver(post_delete, sender=Membership, dispatch_uid="membership-cache-delete")
def _membership_changed(sender, instance: Membership, **kwargs):
    slug = Project.objects.filter(pk=instance.project_id).values_list("slug", flat=True).first()
    if slug is not None:  # None: the project is being deleted, and its own signals clear its members
        _forget([_membership_key(instance.user_id, slug)])


@receiver(memberships_bulk_changed, sender=Membership, dispatch_uid="membership-cache-bulk")
def _memberships_bulk_changed(sender, pairs, **kwargs):
    pairs = set(pairs)
    slugs = dict(Project.objects.filter(pk__in={project_id for _, project_id in pairs}).values_list("pk", "slug"))
    _forget([_membership_key(user_id, slugs[project_id]) for user_id, project_id in pairs if project_id in slugs])


@receiver(post_save, sender=Project, dispatch_uid="membership-cache-project-save")
def _project_saved(sender, instance: Project, **kwargs):
    _forget_members(instance, list(Membership.objects.filter(project_id=instance.pk).values_list("user_id", flat=True)))


@receiver(pre_delete, sender=Project, dispatch_uid="membership-cache-project-pre-delete")
def _project_deleting(sender, instance: Project, **kwargs):
    instance._member_ids = list(Membership.objects.filter(project_id=instance.pk).values_list("user_id", flat=True))
    _forget_members(instance, instance._member_ids)


@receiver(post_delete, sender=Project, dispatch_uid="membership-cache-project-delete")
def _project_deleted(sender, instance: Project, **kwargs):
    _forget_members(instance, getattr(instance, "_member_ids", []))  # again: a request may have cached it meanwhile


def _forget_members(project: Project, user_ids) -> None:
    _forget([_membership_key(u, project.slug) for u in user_ids])


def project_view(needed: str = Role.ANNOTATOR):
    """Decorator for views taking `slug`: logs in, loads the project, checks the role, and sets
    `request.project` and `request.role`."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            membership = None if request.user.is_superuser else membership_cached(request.user.pk, slug)
            # No query on the hot path (a member, cached); otherwise the project alone, for the 404/403 choice.
            project = membership.project if membership else get_object_or_404(Project, slug=slug)
            request.role = _checked(membership.role if membership else role_of(request.user, project), project, needed)
            request.project = project
            return view(request, project, *args, **kwargs)

        return wrapper

    return decorator

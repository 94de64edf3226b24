"""Role checks for every view and socket. Roles nest: admin ⊃ researcher ⊃ annotator; a Django
superuser counts as admin everywhere. Non-members get 404 (a project's existence is not leaked),
members without the needed role get 403."""
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from webapp.projects.models import ROLE_RANK, Membership, Project, Role


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


def project_view(needed: str = Role.ANNOTATOR):
    """Decorator for views taking `slug`: logs in, loads the project, checks the role, and sets
    `request.project` and `request.role`."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug, *args, **kwargs):
            membership = (None if request.user.is_superuser else
                          Membership.objects.select_related("project").filter(project__slug=slug, user=request.user).first())
            # One query on the hot path (a member); otherwise the project alone, for the 404/403 choice.
            project = membership.project if membership else get_object_or_404(Project, slug=slug)
            request.role = _checked(membership.role if membership else role_of(request.user, project), project, needed)
            request.project = project
            return view(request, project, *args, **kwargs)

        return wrapper

    return decorator

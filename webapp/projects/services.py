"""Writes for projects: create, add members, invite links and their acceptance."""
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from webapp.projects.models import Invite, Membership, Project, Role


def project_create(*, name: str, created_by=None, description: str = "", guidelines: str = "") -> Project:
    base = slugify(name)[:90] or "project"
    slug, n = base, 1
    while Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    with transaction.atomic():
        project = Project.objects.create(name=name, slug=slug, description=description, guidelines=guidelines, created_by=created_by)
        if created_by is not None:
            Membership.objects.create(project=project, user=created_by, role=Role.ADMIN)
    return project


def member_set_role(*, project: Project, user, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def member_remove(*, project: Project, user) -> None:
    admins = Membership.objects.filter(project=project, role=Role.ADMIN)
    if admins.filter(user=user).exists() and admins.count() == 1:
        raise ValidationError("A project keeps at least one admin.")
    Membership.objects.filter(project=project, user=user).delete()


def user_create(*, username: str, password: str, email: str = ""):
    """Creates a user after Django's password validators (AUTH_PASSWORD_VALIDATORS) accept the
    password; their messages come back as the ValidationError."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError(f"The username {username!r} is taken.")
    validate_password(password, user=User(username=username, email=email))
    try:
        with transaction.atomic():  # the unique username decides a race the check above let through
            return User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError:
        raise ValidationError(f"The username {username!r} is taken.") from None


def member_add(*, project: Project, username: str, password: str, role: str) -> Membership:
    """Adds a user to the project by name, creating them (with `password`) when new. Two adds of one
    new name at once make one user: the loser of the unique-username race adds the winner's user."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        if not password:
            raise ValidationError("A new user needs a password.")
        try:
            user = user_create(username=username, password=password)  # validates the password
        except ValidationError:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise
    return member_set_role(project=project, user=user, role=role)


def invite_create(*, project: Project, role: str, created_by, days_valid: int = 7) -> Invite:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    return Invite.objects.create(project=project, role=role, created_by=created_by, expires_at=timezone.now() + timedelta(days=days_valid))


def invite_accept(*, token: str, user) -> Membership:
    with transaction.atomic():
        invite = Invite.objects.select_for_update().filter(token=token).first()
        if invite is None:
            raise ValidationError("This invite link is not valid.")
        if invite.used_at is not None:
            raise ValidationError("This invite link has already been used.")
        if invite.expires_at < timezone.now():
            raise ValidationError("This invite link has expired; ask an admin for a new one.")
        invite.used_by, invite.used_at = user, timezone.now()
        invite.save(update_fields=["used_by", "used_at"])
        existing = Membership.objects.filter(project=invite.project, user=user).first()
        if existing:  # never downgrade an existing member through an invite
            return existing
        return Membership.objects.create(project=invite.project, user=user, role=invite.role)

"""Projects, memberships with a role, and invite links that admins hand out."""
import secrets

from django.conf import settings
from django.db import models
from django.dispatch import Signal


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    RESEARCHER = "researcher", "Researcher"
    ANNOTATOR = "annotator", "Annotator"


# Higher rank includes the rights of the lower ones: admins can do what researchers can, and so on.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.RESEARCHER: 2, Role.ADMIN: 3}


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Annotation guidelines (markdown), shown beside every item.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# Sent with `pairs=[(user_id, project_id), ...]` after a bulk write of memberships that model signals
# do not see (QuerySet.update, bulk_update, bulk_create): webapp/projects/permissions.py clears their
# cached entries, as post_save/post_delete do for single rows.
memberships_bulk_changed = Signal()


class MembershipQuerySet(models.QuerySet):
    """Every bulk write path of memberships clears the cached memberships it touches (a queryset
    `.delete()` already sends post_delete per row). Only raw SQL is left to the cache's TTL."""

    def update(self, **kwargs):
        rows = list(self.values_list("pk", "user_id", "project_id"))
        updated = super().update(**kwargs)
        pairs = {(user_id, project_id) for _, user_id, project_id in rows}
        if {"user", "user_id", "project", "project_id"} & set(kwargs):  # moved: its new key too
            pairs |= set(self.model._base_manager.using(self.db).filter(pk__in=[pk for pk, _, _ in rows])
                         .values_list("user_id", "project_id"))
        memberships_bulk_changed.send(sender=self.model, pairs=pairs)
        return updated

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        memberships_bulk_changed.send(sender=self.model, pairs={(m.user_id, m.project_id) for m in created})
        return created


class Membership(models.Model):
    objects = MembershipQuerySet.as_manager()

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user_per_project"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self):
        return f"{self.user} · {self.role} · {self.project}"


def _invite_token() -> str:
    return secrets.token_urlsafe(24)


class Invite(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=20, choices=Role.choices)
    token = models.CharField(max_length=64, unique=True, default=_invite_token)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(role__in=Role.values), name="invite_role_valid")]

    def __str__(self):
        return f"invite to {self.project} as {self.role}"

"""Personal API tokens. Only the sha256 of a token is stored (tokens.py says why that is enough); the
token acts as its user, narrowed to its projects and to reading or also writing."""
from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The token's first characters, to tell tokens apart on the page.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="sha256 hex of the whole token.")
    can_write = models.BooleanField(default=False, help_text="Off: GET requests only.")
    all_projects = models.BooleanField(default=False, help_text="Every project the user is a member of, now or later.")
    projects = models.ManyToManyField("projects.Project", blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

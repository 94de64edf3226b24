"""The one lifecycle every queued job shares (generation jobs, training runs, evaluations, judge
jobs): queued → running → succeeded / failed / cancelled."""
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

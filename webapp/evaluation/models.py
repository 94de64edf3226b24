"""An evaluation generates answers of several model versions on held-out prompts and judges them
(teacher-judge, oracle, humans); its comparisons and judgements live in annotation/. A loop round
records one turn of the closed loop."""
from django.conf import settings
from django.db import models


class EvalStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Evaluation(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="evaluations")
    name = models.CharField(max_length=200)
    prompt_set = models.ForeignKey("catalog.PromptSet", on_delete=models.PROTECT, related_name="evaluations")
    teacher = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="evaluations_as_teacher")
    model_versions = models.ManyToManyField("catalog.ModelVersion", related_name="evaluations")
    judges = models.JSONField(default=list, help_text="e.g. ['teacher', 'oracle', 'humans']")
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=EvalStatus.choices, default=EvalStatus.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=EvalStatus.values), name="evaluation_status_valid")]

    def __str__(self):
        return self.name


class LoopRound(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="loop_rounds")
    number = models.PositiveIntegerField()
    student = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="loop_rounds")
    prompt_set = models.ForeignKey("catalog.PromptSet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    stats = models.JSONField(default=dict, blank=True, help_text="judgements in, oracle accuracy, gain")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="loopround_unique_number")]

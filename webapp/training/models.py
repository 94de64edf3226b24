"""A training run moves queued → running → succeeded/failed/cancelled. A worker claims it with one
conditional UPDATE and beats `heartbeat_at`; a reaper fails silent runs. Metric points are stored
(throttled) so a late viewer sees the whole history."""
from django.conf import settings
from django.db import models

from webapp.lifecycle import ACTIVE, Job
from webapp.training.monitor import DEFAULT_SAMPLE_SIZE


class Method(models.TextChoices):
    SFT = "sft", "SFT / sequence-level KD"
    KD = "kd", "Token-level KD"
    DPO = "dpo", "DPO"
    DCKD = "dckd", "DCKD"
    ADPA = "adpa", "ADPA"
    ADPA_PLUS = "adpa_plus", "ADPA+ (DCKD → ADPA)"
    TAID = "taid", "TAID"
    REDI = "redi", "REDI"


ACTIVE_STATUSES = ACTIVE  # queued or running (webapp/lifecycle.py)


class TrainingRun(Job):
    STALE_AFTER_SETTING = "RUN_STALE_AFTER_SECONDS"
    RERUN_HINT = "Resume continues from the last checkpoint."
    PROGRESS_FIELDS = ("step", "total_steps")
    progress_done = progress_total = None  # a run counts optimizer steps

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="training_runs")
    name = models.CharField(max_length=200)
    method = models.CharField(max_length=20, choices=Method.choices)
    config = models.JSONField(default=dict, help_text="Validated by ml.config for the method.")
    snapshot = models.ForeignKey("annotation.PreferenceSnapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs")
    student = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="runs_as_student")
    teacher = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="runs_as_teacher")
    teacher_sft = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="runs_as_teacher_sft")
    teacher_dpo = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="runs_as_teacher_dpo")
    cloned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones")
    resume_from = models.ForeignKey("Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    traceback = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    # Checkpoint evaluation during the run (webapp/training/checkpoint_evals.py): off when 0.
    eval_prompt_set = models.ForeignKey("catalog.PromptSet", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+", help_text="Held-out prompts for checkpoint evaluations.")
    eval_every_steps = models.PositiveIntegerField(default=0, help_text="Evaluate a checkpoint every N steps (and the last); 0 = off.")
    eval_sample_size = models.PositiveIntegerField(default=DEFAULT_SAMPLE_SIZE, help_text="Held-out prompts per checkpoint evaluation.")
    # Experiment trackers (ml.trackers): this run's choice ("" = the deployment's REPORT_TO, "none" = off),
    # and the tracker runs the worker opened: {"mlflow": {"run_id", "url", ...}, "tensorboard": {"log_dir"}}.
    report_to = models.CharField(max_length=100, blank=True, default="",
                                 help_text="Comma-separated trackers; empty = the deployment's setting, none = off.")
    trackers = models.JSONField(default=dict, blank=True)
    eval_judge = models.CharField(max_length=20, default="likelihood", choices=[
        ("likelihood", "Teacher likelihood"), ("generative", "Teacher asked (generative)"), ("none", "No judge")],
        help_text="Judge for the win rate against the teacher at each checkpoint (both orders).")

    class Meta(Job.Meta):
        constraints = [
            *Job.Meta.constraints,
            models.CheckConstraint(condition=models.Q(method__in=Method.values), name="run_method_valid"),
        ]

    def __str__(self):
        return f"{self.name} ({self.method})"


class MetricPoint(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metric_points")
    step = models.PositiveIntegerField()
    epoch = models.FloatField(default=0.0)
    tokens = models.BigIntegerField(default=0)
    values = models.JSONField(help_text="loss, lr, tokens_per_s, memory_mb and method metrics")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="metricpoint_unique_step")]


class Checkpoint(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    is_final = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpoint_unique_step")]


class RunPreset(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="run_presets")
    name = models.CharField(max_length=200)
    method = models.CharField(max_length=20, choices=Method.choices)
    config = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="runpreset_unique_name")]


class CheckpointEvaluation(models.Model):
    """The light evaluation of one checkpoint during a run (ml.checkpoint_eval.CheckpointEval as
    `metrics`): oracle accuracy, KL and agreement to the teacher, judge win rate, with intervals."""
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="checkpoint_evaluations")
    checkpoint = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    step = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="checkpointevaluation_unique_step")]

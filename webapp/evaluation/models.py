"""An evaluation generates answers of several model versions on held-out prompts and judges them
(teacher-judge, oracle, humans); its comparisons and judgements live in annotation/, each answer's
token-level teacher signals in EvaluationOutput. A loop round records one turn of the closed loop;
the project leaderboard holds the latest Bradley-Terry fit over every pairwise outcome."""
from django.conf import settings
from django.db import models

from webapp.lifecycle import Job


class Evaluation(Job):
    RERUN_HINT = "Rerun it: answers already stored are kept; the judging runs again."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="evaluations")
    name = models.CharField(max_length=200)
    prompt_set = models.ForeignKey("catalog.PromptSet", on_delete=models.PROTECT, related_name="evaluations")
    teacher = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="evaluations_as_teacher")
    model_versions = models.ManyToManyField("catalog.ModelVersion", related_name="evaluations")
    judges = models.JSONField(default=list, help_text="e.g. ['teacher', 'oracle', 'humans']")
    config = models.JSONField(default=dict, blank=True)
    results = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        pass

    def __str__(self):
        return self.name


class EvaluationOutput(models.Model):
    """One model version's answer to one prompt inside an evaluation, with what the oracle said and,
    for candidates, per-token teacher signals (tokens, teacher_logp, kl, advantage) for the heatmap."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="outputs")
    model_version = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey("catalog.Prompt", on_delete=models.PROTECT, related_name="+")
    generation = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="+")
    oracle_correct = models.BooleanField(null=True, blank=True)
    signals = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A re-run task finds the answers it already stored instead of generating them twice.
            models.UniqueConstraint(fields=["evaluation", "model_version", "prompt"], name="evaloutput_unique_answer"),
        ]


class LoopRound(Job):
    RERUN_HINT = "Rerun it: it answers fresh prompts again."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="loop_rounds")
    number = models.PositiveIntegerField()
    student = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="loop_rounds")
    teacher = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prompt_set = models.ForeignKey("catalog.PromptSet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prompt_count = models.PositiveIntegerField(default=20)
    stats = models.JSONField(default=dict, blank=True, help_text="judgements in, oracle accuracy, gain")

    class Meta(Job.Meta):
        ordering = ["project", "number"]
        constraints = [
            *Job.Meta.constraints,
            models.UniqueConstraint(fields=["project", "number"], name="loopround_unique_number"),
            # Two starts at once (a double click, two researchers) leave one round running, not two.
            models.UniqueConstraint(fields=["project"], condition=models.Q(status__in=["queued", "running"]),
                                    name="loopround_one_active_per_project"),
        ]

    def __str__(self):
        return f"round {self.number}"


class Leaderboard(models.Model):
    """The latest Bradley-Terry fit of a project, one per outcome source ("all", "human", "judge"):
    scores = {source: {"rows": [{model_version, name, score, low, high, games}], "pairs": n, "error": ""}}."""

    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, related_name="leaderboard")
    scores = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

"""A generation job asks model versions to answer prompts (k samples each); each answer is a
generation. Generations are kept while any comparison or preference pair uses them."""
from django.db import models

from webapp.lifecycle import Job


class GenerationJob(Job):
    RERUN_HINT = "Rerun it: answers already stored are kept and not generated again."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="generation_jobs")
    model_versions = models.ManyToManyField("catalog.ModelVersion", related_name="generation_jobs")
    prompt_set = models.ForeignKey("catalog.PromptSet", on_delete=models.PROTECT, related_name="generation_jobs")
    split = models.CharField(max_length=10, blank=True, help_text="Only prompts of this split; empty = all.")
    prompt_limit = models.PositiveIntegerField(null=True, blank=True)
    k = models.PositiveSmallIntegerField(default=1)
    temperature = models.FloatField(default=1.0)
    top_p = models.FloatField(default=1.0)
    max_new_tokens = models.PositiveIntegerField(default=64)
    seed = models.IntegerField(default=0)
    usage = models.JSONField(default=dict, blank=True, help_text="Endpoint versions' token and request counts, "
                             "{version id: {prompt_tokens, completion_tokens, requests, retries}}, summed over attempts.")

    class Meta(Job.Meta):
        constraints = [
            *Job.Meta.constraints,
            models.CheckConstraint(condition=models.Q(k__gte=1) & models.Q(k__lte=16), name="genjob_k_range"),
            models.CheckConstraint(condition=models.Q(temperature__gte=0), name="genjob_temperature_nonneg"),
            models.CheckConstraint(condition=models.Q(top_p__gt=0) & models.Q(top_p__lte=1), name="genjob_top_p_range"),
        ]

    def __str__(self):
        return f"generation job {self.pk}"


class Generation(models.Model):
    job = models.ForeignKey(GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="generations")
    prompt = models.ForeignKey("catalog.Prompt", on_delete=models.PROTECT, related_name="generations")
    model_version = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="generations")
    sample_index = models.PositiveSmallIntegerField(default=0)
    text = models.TextField(blank=True)
    token_count = models.PositiveIntegerField(default=0)
    token_logps = models.JSONField(null=True, blank=True, help_text="Per-token log-probs under the generating model.")
    seed = models.IntegerField(default=0)
    temperature = models.FloatField(default=1.0)
    top_p = models.FloatField(default=1.0)
    origin = models.CharField(max_length=20, default="job", help_text="job, playground, import")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A job re-run (idempotent task) never duplicates a sample.
            models.UniqueConstraint(fields=["job", "prompt", "model_version", "sample_index"], name="generation_unique_sample"),
        ]

    def __str__(self):
        return f"generation {self.pk} of {self.model_version_id}"


class GenerationCounter(models.Model):
    """A project's generation count in 16 shards (generation id mod 16), kept by statement-level
    triggers (migration 0005_generation_counter) in the transaction of every insert and delete, so the project
    home reads 16 rows instead of counting millions of generations."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    shard = models.SmallIntegerField()
    generations = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "shard"], name="generationcounter_unique_shard")]

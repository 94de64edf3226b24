"""Model versions and prompts. A model version points at weights by local path or hub id +
revision, or at an OpenAI-compatible endpoint (vLLM, SGLang, a hosted API) that serves it; lineage
links it to its parent version and the training run that produced it. A GGUF conversion is the job
that turns a .gguf file into a model directory and registers it."""
from django.contrib.postgres.fields import ArrayField
from django.db import models

from webapp.lifecycle import Job

# The name (never the value) of the worker environment variable holding an endpoint's API key; the
# same rule as ml.endpoints.spec.check_key_env, kept here too so no row can point at SECRET_KEY.
KEY_ENV_PATTERN = r"^DISTILLERY_ENDPOINT_KEY_[A-Z0-9_]{1,64}$"
ENDPOINT_SOURCE_PREFIX = "endpoint:"


class ModelRole(models.TextChoices):
    TEACHER = "teacher", "Teacher"
    STUDENT = "student", "Student"
    REFERENCE = "reference", "Reference"


class TeacherStage(models.TextChoices):
    BASE = "base", "Base"
    SFT = "sft", "After SFT (π_sft)"
    DPO = "dpo", "After DPO (π_dpo)"


class ModelVersion(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=ModelRole.choices)
    stage = models.CharField(max_length=10, choices=TeacherStage.choices, default=TeacherStage.BASE)
    source = models.CharField(max_length=500, help_text="Local directory or hub id; for an endpoint "
                              "\"endpoint:<served model>@<base URL>\" (a label: workers read endpoint_url/served_model).")
    revision = models.CharField(max_length=100, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    produced_by = models.ForeignKey("training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions")
    snapshot = models.ForeignKey("annotation.PreferenceSnapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions")
    method = models.CharField(max_length=20, blank=True)
    config = models.JSONField(default=dict, blank=True)
    weights_hash = models.JSONField(default=dict, blank=True, help_text="sha256 of the weight, config and tokenizer "
                                    "files with their sizes/mtimes (ml.modeling.weights_hash): hashed once, reused after.")
    # Served by an OpenAI-compatible endpoint instead of weights (empty endpoint_url: weights).
    endpoint_url = models.CharField(max_length=500, blank=True, help_text="Base URL ending in /v1, checked "
                                    "against ENDPOINT_HOSTS (ml.endpoints.spec.check_endpoint_url).")
    served_model = models.CharField(max_length=200, blank=True, help_text="The model name the endpoint serves.")
    api_key_env = models.CharField(max_length=100, blank=True, help_text="NAME of the workers' environment "
                                   "variable holding the API key (DISTILLERY_ENDPOINT_KEY_*); the key is never stored.")
    concurrency = models.PositiveIntegerField(default=4)
    timeout_s = models.FloatField(default=60.0)
    rate_limit_per_s = models.FloatField(default=0.0, help_text="Requests per second at most; 0 = no limit.")
    capability = models.JSONField(null=True, blank=True, help_text="What the probe found (ml.endpoints.probe): "
                                  "white-box/black-box, top_logprobs max, prompt_logprobs, the served identity.")
    probe_error = models.TextField(blank=True, help_text="Why the last probe failed; empty when it succeeded.")
    probed_at = models.DateTimeField(null=True, blank=True, help_text="When the last probe finished; null = pending.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="modelversion_unique_name"),
            models.CheckConstraint(condition=models.Q(endpoint_url="") | ~models.Q(served_model=""),
                                   name="modelversion_endpoint_has_model"),
            models.CheckConstraint(condition=models.Q(api_key_env="") | models.Q(api_key_env__regex=KEY_ENV_PATTERN),
                                   name="modelversion_key_env_prefixed"),
            models.CheckConstraint(condition=models.Q(concurrency__gte=1) & models.Q(timeout_s__gt=0)
                                   & models.Q(rate_limit_per_s__gte=0), name="modelversion_endpoint_limits_valid"),
            models.CheckConstraint(condition=models.Q(role__in=ModelRole.values), name="modelversion_role_valid"),
            models.CheckConstraint(condition=models.Q(stage__in=TeacherStage.values), name="modelversion_stage_valid"),
            models.CheckConstraint(condition=~models.Q(source=""), name="modelversion_source_present"),
        ]

    def __str__(self):
        return self.name

    @property
    def stage_label(self) -> str:
        """What lists show as its stage: a teacher's (base, π_sft, π_dpo); for a student or reference
        trained here, the method that made it (a trained student is not "Base")."""
        if self.role != ModelRole.TEACHER and self.method:
            return "after " + self.method.replace("_plus", "+").upper()
        return self.get_stage_display()

    @property
    def is_endpoint(self) -> bool:
        return bool(self.endpoint_url)

    @property
    def probe_state(self) -> str:
        """"" for weights; "pending" until a probe finishes, then "ok" or "failed"."""
        if not self.is_endpoint:
            return ""
        if self.probed_at is None:
            return "pending"
        return "failed" if self.probe_error else "ok"

    @property
    def endpoint_kind(self) -> str:
        """white-box / black-box as the probe found it; "" before a successful probe."""
        return (self.capability or {}).get("kind", "") if self.probe_state == "ok" else ""

    def endpoint_spec(self) -> dict:
        """The plain dict ml.endpoints.spec.EndpointSpec.from_dict takes (no key: only its env name)."""
        return {"base_url": self.endpoint_url, "model": self.served_model, "api_key_env": self.api_key_env,
                "concurrency": self.concurrency, "timeout_s": self.timeout_s, "rate_limit_per_s": self.rate_limit_per_s}


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    EVAL = "eval", "Eval"


class PromptSet(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="prompt_sets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="promptset_unique_name")]

    def __str__(self):
        return self.name


class Prompt(models.Model):
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField(blank=True, help_text="Plain-text prompt; empty when `messages` is used.")
    messages = models.JSONField(null=True, blank=True, help_text="Chat messages [{role, content}, ...].")
    split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="e.g. demo-world family and answer.")
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["prompt_set", "content_hash"], name="prompt_unique_content_per_set"),
            models.CheckConstraint(condition=~models.Q(text="") | models.Q(messages__isnull=False), name="prompt_has_content"),
            models.CheckConstraint(condition=models.Q(split__in=Split.values), name="prompt_split_valid"),
        ]
        indexes = [models.Index(fields=["prompt_set", "split"])]

    def __str__(self):
        return (self.text or str(self.messages))[:80]


class GGUFConversion(Job):
    """A .gguf file being dequantized into a model directory (safetensors, tokenizer, chat template)
    on the gpu queue; on success it registers `model_version` under `name`."""

    RERUN_HINT = "Convert it again with Rerun."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="gguf_conversions")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=ModelRole.choices)
    stage_of_teacher = models.CharField(max_length=10, choices=TeacherStage.choices, default=TeacherStage.BASE)
    gguf_path = models.CharField(max_length=500)
    target_dir = models.CharField(max_length=500, blank=True)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta(Job.Meta):
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} from {self.gguf_path}"


class PromptImport(Job):
    """A large prompt file imported on the default queue (webapp/catalog/prompt_imports.py): the
    upload is saved under the data dir, validated and stored by a worker while the page shows its
    stage; like an import in the page, it stores all of the file or none of it."""

    RERUN_HINT = "Upload the file again."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="prompt_imports")
    prompt_set_name = models.CharField(max_length=200)
    filename = models.CharField(max_length=300)
    path = models.CharField(max_length=500, help_text="The saved upload; deleted once imported.")
    size_bytes = models.BigIntegerField(default=0)
    default_split = models.CharField(max_length=10, choices=Split.choices, default=Split.TRAIN)
    errors = models.JSONField(default=list, blank=True, help_text="Line-numbered problems; nothing imported then.")
    created_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    prompt_set = models.ForeignKey(PromptSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta(Job.Meta):
        ordering = ["-created_at"]

    def __str__(self):
        return f"import of {self.filename}"

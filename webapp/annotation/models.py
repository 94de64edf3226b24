"""Comparisons (2..k generations of one prompt shown together), judgements (one verdict by a
person or a judge model) and preference snapshots (a frozen, hashed list of chosen/rejected pairs).
A judgement survives its annotator: users with judgements cannot be deleted (PROTECT)."""
from django.conf import settings
from django.db import models

from webapp.lifecycle import Job


class ComparisonKind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise"
    KWAY = "kway", "k-way ranking"


class ComparisonSource(models.TextChoices):
    TEACHER_STUDENT = "teacher_student", "Teacher vs student"
    STUDENT_STUDENT = "student_student", "Student samples"
    KWAY = "kway", "k-way"
    EVALUATION = "evaluation", "Evaluation"
    LOOP = "loop", "Next round"
    PLAYGROUND = "playground", "Playground"
    IMPORTED = "imported", "Imported"


class ComparisonStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"
    DISPUTED = "disputed", "Disputed"
    ADJUDICATED = "adjudicated", "Adjudicated"


class Comparison(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey("catalog.Prompt", on_delete=models.PROTECT, related_name="comparisons")
    kind = models.CharField(max_length=10, choices=ComparisonKind.choices, default=ComparisonKind.PAIRWISE)
    source = models.CharField(max_length=20, choices=ComparisonSource.choices, default=ComparisonSource.TEACHER_STUDENT)
    required_annotations = models.PositiveSmallIntegerField(default=1)
    priority = models.FloatField(default=0.0, help_text="Higher first, e.g. teacher-student disagreement.")
    status = models.CharField(max_length=20, choices=ComparisonStatus.choices, default=ComparisonStatus.OPEN)
    evaluation = models.ForeignKey("evaluation.Evaluation", null=True, blank=True, on_delete=models.CASCADE, related_name="comparisons")
    loop_round = models.ForeignKey("evaluation.LoopRound", null=True, blank=True, on_delete=models.SET_NULL, related_name="comparisons")
    generations = models.ManyToManyField("generation.Generation", through="ComparisonItem", related_name="comparisons")
    # Built comparisons (services.comparisons_build) only: their generation ids, sorted, comma-joined.
    # Unique per project, so builds that race insert each set once (ON CONFLICT DO NOTHING).
    build_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "build_key"], condition=~models.Q(build_key=""),
                                    name="comparison_unique_build_key"),
            models.CheckConstraint(condition=models.Q(required_annotations__gte=1), name="comparison_needs_annotators"),
            models.CheckConstraint(condition=models.Q(status__in=ComparisonStatus.values), name="comparison_status_valid"),
        ]
        indexes = [
            models.Index(fields=["project", "status", "-priority"]),
            # The queue's exact order, so "next item" walks the index and stops at the first fit.
            models.Index(fields=["project", "status", "-priority", "id"], name="comparison_queue_order"),
        ]

    def __str__(self):
        return f"comparison {self.pk}"


class ComparisonItem(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="items")
    generation = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(help_text="Canonical position; verdict 'a' = position 0.")

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "generation"], name="comparisonitem_unique_generation"),
            models.UniqueConstraint(fields=["comparison", "position"], name="comparisonitem_unique_position"),
        ]


class JudgementSource(models.TextChoices):
    HUMAN = "human", "Human"
    TEACHER = "teacher", "Teacher-judge"
    ORACLE = "oracle", "Oracle"
    IMPORTED = "imported", "Imported dataset"


class Verdict(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"
    RANKING = "ranking", "Ranking (k-way)"


class Judgement(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgements")
    source = models.CharField(max_length=10, choices=JudgementSource.choices)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="judgements")
    judge_model = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="judgements")
    judge_name = models.CharField(max_length=200, blank=True, help_text="Judge identity, e.g. implicit-reward:<model>.")
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    ranking = models.JSONField(default=list, blank=True, help_text="Groups of generation ids, best first; ties share a group.")
    shown_order = models.JSONField(default=list, help_text="Generation ids in the order shown (or 'both' orders for judges).")
    rationale = models.TextField(blank=True)
    flags = models.JSONField(default=list, blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    probability = models.FloatField(null=True, blank=True, help_text="Judge's P(a ≻ b).")
    details = models.JSONField(default=dict, blank=True)
    is_adjudication = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], condition=models.Q(annotator__isnull=False), name="judgement_one_per_annotator"),
            models.UniqueConstraint(fields=["comparison", "judge_name"], condition=models.Q(annotator__isnull=True), name="judgement_one_per_judge"),
            models.CheckConstraint(
                condition=(models.Q(source="human") & models.Q(annotator__isnull=False))
                | (~models.Q(source="human") & models.Q(annotator__isnull=True) & ~models.Q(judge_name="")),
                name="judgement_identity_matches_source",
            ),
            models.CheckConstraint(condition=models.Q(verdict__in=Verdict.values), name="judgement_verdict_valid"),
            models.CheckConstraint(
                condition=models.Q(probability__isnull=True) | (models.Q(probability__gte=0) & models.Q(probability__lte=1)),
                name="judgement_probability_range",
            ),
        ]
        indexes = [models.Index(fields=["annotator", "-created_at"])]


class PreferenceImport(models.Model):
    """One imported preference dataset per (project, name): the row four concurrent uploads of one
    file race for, so its votes are stored once (preference_store.preferences_import)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="preference_imports")
    dataset = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "dataset"], name="preferenceimport_unique_dataset")]

    def __str__(self):
        return f"import:{self.dataset}"


class PreferenceSnapshot(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=200)
    rule = models.CharField(max_length=20, default="majority", help_text="majority or agreement_weighted")
    tie_policy = models.CharField(max_length=20, default="drop", help_text="drop or ...")
    source_filter = models.CharField(max_length=20, default="both", help_text="humans, teacher or both")
    content_hash = models.CharField(max_length=64)
    pair_count = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True)
    sources = models.JSONField(default=dict, blank=True,
                               help_text="Judgements the pairs drew on: human (judgements, annotators), each teacher-judge identity, each imported dataset.")
    agreement = models.JSONField(default=dict, blank=True,
                                 help_text="α/κ among people and judge-human agreement on the pairs' comparisons, with warnings.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="snapshot_unique_name"),
            models.UniqueConstraint(fields=["project", "content_hash"], name="snapshot_unique_content"),
        ]

    def __str__(self):
        return f"{self.name} ({self.content_hash[:8]})"


class PreferencePair(models.Model):
    """One frozen chosen/rejected pair; texts are copied in so the hash covers the content."""

    snapshot = models.ForeignKey(PreferenceSnapshot, on_delete=models.CASCADE, related_name="pairs")
    prompt = models.ForeignKey("catalog.Prompt", on_delete=models.PROTECT, related_name="+")
    chosen = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="+")
    rejected = models.ForeignKey("generation.Generation", on_delete=models.PROTECT, related_name="+")
    prompt_text = models.TextField()
    chosen_text = models.TextField()
    rejected_text = models.TextField()
    weight = models.FloatField(default=1.0)
    provenance = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~models.Q(chosen=models.F("rejected")), name="pair_chosen_differs")]


class Assignment(models.Model):
    """A short lease: the comparison an annotator has on screen. The queue counts live leases as
    pending judgements, so fifty people at once do not all get the same top-priority item."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_one_per_annotator")]
        indexes = [models.Index(fields=["annotator", "expires_at"])]


class Skip(models.Model):
    """An annotator passed on a comparison; the queue never offers it to them again."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "annotator"], name="skip_one_per_annotator")]


class JudgeMethod(models.TextChoices):
    GENERATIVE = "generative", "Generative (asks the teacher, both orders)"
    LIKELIHOOD = "likelihood", "Length-normalized likelihood"
    IMPLICIT_REWARD = "implicit_reward", "DPO implicit reward (π_dpo vs π_sft)"


class JudgeJob(Job):
    """The teacher judging chosen comparisons on the gpu queue; each verdict becomes a Judgement
    with source=teacher, its probability and the judge's identity."""

    RERUN_HINT = "Rerun it: it judges the comparisons again and replaces this judge's verdicts."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="judge_jobs")
    method = models.CharField(max_length=20, choices=JudgeMethod.choices, default=JudgeMethod.GENERATIVE)
    teacher = models.ForeignKey("catalog.ModelVersion", on_delete=models.PROTECT, related_name="judge_jobs")
    reference = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                  help_text="π_sft for the implicit reward (the teacher is then π_dpo).")
    beta = models.FloatField(default=0.01)
    comparison_ids = models.JSONField(default=list)
    judge_name = models.CharField(max_length=300, blank=True)
    unparseable = models.PositiveIntegerField(default=0, help_text="Comparisons whose judge answer could not be read "
                                              "(endpoint judges): no verdict stored, never counted as a tie.")
    # The generative judge's question (ml.config.check_judge_template): blank = DEFAULT_JUDGE_TEMPLATE.
    template = models.TextField(blank=True, help_text="The generative judge's question; blank = the default.")
    first_label = models.CharField(max_length=40, default="A")
    second_label = models.CharField(max_length=40, default="B")
    answer_mass_threshold = models.FloatField(default=0.5, help_text="A verdict whose answer mass (probability on the "
                                              "two labels) is below this is marked low-mass.")
    low_answer_mass = models.PositiveIntegerField(default=0, help_text="Verdicts stored below the answer-mass "
                                                  "threshold (marked: the judge ignored the format there).")

    class Meta(Job.Meta):
        constraints = [
            *Job.Meta.constraints,
            models.CheckConstraint(condition=models.Q(method__in=["generative", "likelihood", "implicit_reward"]), name="judgejob_method_valid"),
        ]


class AnnotatorProgress(models.Model):
    """One annotator's maintained progress in one project: their judgements, those on open
    comparisons and their skips of open comparisons. Kept by PostgreSQL triggers (migration 0012)
    in the transaction of every write that changes them, so the hot path reads one row instead of
    recounting the project; `annotation_counters_rebuild(project)` recounts from scratch."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    judged = models.IntegerField(default=0)
    judged_open = models.IntegerField(default=0)
    skipped_open = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "annotator"], name="annotatorprogress_unique")]


class ProjectCounter(models.Model):
    """A project's comparison counts by status and its judgement count, in 16 shards (comparison id
    mod 16) so that concurrent status changes rarely wait on one row; a read sums the shards. Kept by
    the same triggers as AnnotatorProgress."""

    SHARDS = 16

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    shard = models.SmallIntegerField()
    pending = models.BigIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    disputed = models.BigIntegerField(default=0)
    judgements = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "shard"], name="projectcounter_unique_shard")]


class QualityReport(models.Model):
    """The quality page's agreement figures (κ, α, judge-human, biases) as the default-queue task
    `refresh_quality` last computed them: the page shows them with their age and asks for a refresh
    when the project's judgement count moved, never recomputing them in the request."""

    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    judgements = models.BigIntegerField(default=-1, help_text="The project's judgement count the report was computed at.")
    computed_at = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True, help_text="When the last refresh was asked for.")


class SnapshotFreeze(Job):
    """A snapshot freeze run on the default queue (webapp/annotation/snapshot_jobs.py) when the
    project is too large to freeze within a page request; the snapshots page shows its stage."""

    RERUN_HINT = "Rerun it: it freezes again from the judgements as they are now."

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="snapshot_freezes")
    name = models.CharField(max_length=200)
    rule = models.CharField(max_length=20, default="majority")
    tie_policy = models.CharField(max_length=20, default="drop")
    source_filter = models.CharField(max_length=20, default="both")
    snapshot = models.ForeignKey(PreferenceSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta(Job.Meta):
        ordering = ["-created_at"]

    def __str__(self):
        return f"freeze of {self.name}"

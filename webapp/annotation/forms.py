"""Forms of the annotation pages: building comparisons, a teacher-judge job, a snapshot."""
from django import forms
from django.core.exceptions import ValidationError

from ml.config import DEFAULT_ANSWER_MASS_THRESHOLD, DEFAULT_JUDGE_TEMPLATE
from webapp.annotation import aggregation, judging
from webapp.annotation.models import ComparisonSource, JudgeMethod
from webapp.catalog.models import ModelVersion
from webapp.catalog.selectors import endpoint_notes, endpoint_refusal, version_label
from webapp.generation.models import GenerationJob

MODES = [(ComparisonSource.TEACHER_STUDENT, "Teacher vs student (sample i vs sample i)"),
         (ComparisonSource.STUDENT_STUDENT, "Student vs student (pairs of distinct samples)"),
         (ComparisonSource.KWAY, "k-way ranking (up to k distinct answers per prompt)")]


class ComparisonBuildForm(forms.Form):
    job = forms.ModelChoiceField(queryset=GenerationJob.objects.none(), help_text="Take the generations of this job.")
    mode = forms.ChoiceField(choices=MODES)
    required_annotations = forms.IntegerField(min_value=1, max_value=10, initial=1, label="Annotators per comparison (overlap)")
    kway_size = forms.IntegerField(min_value=2, max_value=6, initial=4, label="k (k-way only)")
    priority = forms.FloatField(initial=0.0, help_text="Higher comes first in the queue.")
    limit = forms.IntegerField(min_value=1, required=False, help_text="At most this many comparisons (blank = all).")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job"].queryset = GenerationJob.objects.filter(project=project, status="succeeded")
        self.fields["job"].label_from_instance = lambda j: f"#{j.pk} · {j.prompt_set.name} · k={j.k} · {j.created_at:%Y-%m-%d %H:%M}"


SCOPES = [("unjudged", "Comparisons this judge has not judged yet"), ("all", "All comparisons (re-judge)"),
          ("disputed", "Disputed comparisons only")]


class JudgeJobForm(forms.Form):
    teacher = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), help_text="For the implicit reward: π_dpo.")
    method = forms.ChoiceField(choices=JudgeMethod.choices)
    reference = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), required=False, help_text="π_sft (implicit reward only).")
    beta = forms.FloatField(min_value=1e-6, initial=0.01, help_text="The teacher DPO stage's β (implicit reward only).")
    scope = forms.ChoiceField(choices=SCOPES)
    source = forms.ChoiceField(choices=[("", "any source"), *ComparisonSource.choices], required=False)
    limit = forms.IntegerField(min_value=1, required=False)
    template = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False, initial=DEFAULT_JUDGE_TEMPLATE,
                               help_text="Generative judge only. Fields: {prompt}, {first}, {second} (both responses "
                                         "are required), {first_label}, {second_label}; {{ and }} for literal braces.")
    first_label = forms.CharField(max_length=40, initial="A", required=False, help_text="The answer that picks the response shown first "
                                  "(one token where the judge starts its answer).")
    second_label = forms.CharField(max_length=40, initial="B", required=False, help_text="The answer that picks the response shown second.")
    answer_mass_threshold = forms.FloatField(min_value=0.0, max_value=1.0, initial=DEFAULT_ANSWER_MASS_THRESHOLD,
                                             required=False,
                                             help_text="A verdict whose probability on the two labels is below this "
                                                       "is marked low-mass (stored, counted, shown on the job).")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        teachers = ModelVersion.objects.filter(project=project, role="teacher")
        self.fields["teacher"].queryset = teachers
        self.fields["reference"].queryset = teachers
        for name in ("teacher", "reference"):
            self.fields[name].label_from_instance = version_label
        self.endpoint_notes = endpoint_notes(teachers.exclude(endpoint_url=""))

    def clean(self):
        """An endpoint judge must serve the chosen method (ml.endpoints.spec.methods_for); the implicit
        reward scores π_dpo and π_sft the same way, so both are endpoints or both are weights."""
        cleaned = super().clean()
        method, teacher, reference = cleaned.get("method"), cleaned.get("teacher"), cleaned.get("reference")
        if not method:
            return cleaned
        for field, version in (("teacher", teacher), ("reference", reference if method == "implicit_reward" else None)):
            why = endpoint_refusal(version, f"judge:{method}")
            if why:
                self.add_error(field, why)
        if method == "implicit_reward" and teacher and reference and teacher.is_endpoint != reference.is_endpoint:
            self.add_error("reference", "The implicit reward scores π_dpo and π_sft the same way: pick two endpoints "
                                        "or two versions with weights, not one of each.")
        cleaned["first_label"] = (cleaned.get("first_label") or "").strip() or "A"  # blank: the defaults
        cleaned["second_label"] = (cleaned.get("second_label") or "").strip() or "B"
        if cleaned.get("answer_mass_threshold") is None and "answer_mass_threshold" not in self.errors:
            cleaned["answer_mass_threshold"] = DEFAULT_ANSWER_MASS_THRESHOLD
        if method == "generative" and "answer_mass_threshold" not in self.errors:
            try:
                judging.judge_rubric_check(template=judging.rubric_template(cleaned.get("template")),
                                           labels=(cleaned["first_label"], cleaned["second_label"]),
                                           threshold=cleaned["answer_mass_threshold"])
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned


class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=200)
    rule = forms.ChoiceField(choices=[("majority", "Majority (one vote each)"),
                                      ("agreement_weighted", "Agreement-weighted (reliable raters and confident judges count more)")])
    tie_policy = forms.ChoiceField(choices=[("drop", "Drop ties"), ("teacher", "Break ties with the teacher-judge")])
    source_filter = forms.ChoiceField(choices=[(s, s) for s in aggregation.SOURCE_FILTERS], initial="both",
                                      help_text="Whose judgements count: humans, the teacher-judge, or both.")

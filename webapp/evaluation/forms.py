"""Forms of the evaluation pages: a new evaluation (models, held-out prompts, judges), sending an
evaluation to the annotators, and the loop's next round. Choices are limited to the project's rows."""
from django import forms

from ml.standard_benchmarks import DEMO_TASK, BenchmarkError, parse_tasks

from webapp.catalog.models import ModelRole, ModelVersion, PromptSet, TeacherStage
from webapp.catalog.selectors import endpoint_notes, endpoint_refusal, version_label, weights_available

JUDGE_CHOICES = [("teacher", "Teacher-judge"), ("oracle", "Oracle (demo tasks)"), ("humans", "Humans (blind, via the queue)")]
TEACHER_JUDGE_CHOICES = [("generative", "Generative: asks the teacher A or B, both orders"),
                         ("likelihood", "Likelihood: length-normalised teacher log-prob"),
                         ("implicit", "Implicit reward: β·(log π_dpo − log π_sft), needs both stages")]
SPLIT_CHOICES = [("eval", "eval (held out)"), ("train", "train"), ("", "all")]


class EvaluationForm(forms.Form):
    name = forms.CharField(max_length=200)
    teacher = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), help_text="Reference answers (and judge).")
    model_versions = forms.ModelMultipleChoiceField(queryset=ModelVersion.objects.none(), widget=forms.CheckboxSelectMultiple,
                                                    label="Compare with the teacher")
    prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.none())
    split = forms.ChoiceField(choices=SPLIT_CHOICES, required=False, initial="eval")
    prompt_limit = forms.IntegerField(min_value=1, max_value=10000, initial=50, help_text="Prompts evaluated, at most.")
    judges = forms.MultipleChoiceField(choices=JUDGE_CHOICES, widget=forms.CheckboxSelectMultiple, initial=["teacher", "oracle"])
    teacher_judge = forms.ChoiceField(choices=TEACHER_JUDGE_CHOICES, initial="generative")
    teacher_dpo = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), required=False,
                                         help_text="Teacher after DPO: implicit judge and the advantage heatmap.")
    teacher_sft = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), required=False,
                                         help_text="Teacher after SFT (the DPO reference).")
    max_new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=32)
    required_annotations = forms.IntegerField(min_value=1, max_value=10, initial=1, label="Annotators per comparison")
    benchmarks = forms.CharField(
        required=False, max_length=500, label="Standard benchmarks (lm-eval tasks)",
        help_text="Comma-separated lm-evaluation-harness task names, run on every model version here, the teacher "
                  f"included. {DEMO_TASK} ships with Distillery and runs offline; hub tasks (arc_easy, gsm8k ...) "
                  "need the worker to reach the Hugging Face hub.")
    benchmark_limit = forms.IntegerField(min_value=1, max_value=100000, required=False, label="Benchmark documents",
                                         help_text="Documents per task, at most (empty = all).")
    benchmark_api = forms.ChoiceField(
        choices=[("completions", "completions (/v1/completions)"), ("chat", "chat (/v1/chat/completions)")],
        initial="completions", required=False, label="Benchmark API for endpoint versions",
        help_text="lm-eval's local-completions or local-chat-completions client; versions with weights run in the worker.")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        versions = ModelVersion.objects.filter(project=project)
        teachers = versions.filter(role=ModelRole.TEACHER)
        self.fields["teacher"].queryset = teachers
        self.fields["model_versions"].queryset = versions
        self.fields["prompt_set"].queryset = PromptSet.objects.filter(project=project)
        self.fields["teacher_dpo"].queryset = teachers.filter(stage=TeacherStage.DPO)
        self.fields["teacher_sft"].queryset = teachers.exclude(stage=TeacherStage.DPO)
        self.fields["teacher"].initial = teachers.first()
        self.fields["prompt_set"].initial = self.fields["prompt_set"].queryset.first()
        # Pre-check only students a worker can load: one that cannot would fail the whole evaluation.
        candidates = list(versions.exclude(role=ModelRole.TEACHER))
        self.fields["model_versions"].initial = [mv for mv in candidates if weights_available(mv)]
        self.fields["model_versions"].label_from_instance = (
            lambda mv: version_label(mv) + ("" if mv.is_endpoint or weights_available(mv) else " (weights not found here)"))
        for name in ("teacher", "teacher_dpo", "teacher_sft"):
            self.fields[name].label_from_instance = version_label
        self.endpoint_notes = endpoint_notes(versions.exclude(endpoint_url=""))

    def clean_benchmarks(self):
        try:
            return ",".join(parse_tasks(self.cleaned_data.get("benchmarks", "")))
        except BenchmarkError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        """Endpoint versions only where their capability serves the use: the teacher and the compared
        versions generate; the teacher-judge (or π_dpo and π_sft for the implicit reward) judges."""
        cleaned = super().clean()
        checks = [("teacher", cleaned.get("teacher"), "generation")]
        checks += [("model_versions", mv, "generation") for mv in cleaned.get("model_versions") or []]
        if "teacher" in (cleaned.get("judges") or []):
            method = cleaned.get("teacher_judge")
            if method == "implicit":
                checks += [(f, cleaned.get(f), "judge:implicit_reward") for f in ("teacher_dpo", "teacher_sft")]
            elif method:
                checks.append(("teacher_judge", cleaned.get("teacher"), f"judge:{method}"))
        for field, version, use in checks:
            why = endpoint_refusal(version, use)
            if why:
                self.add_error(field, why)
        return cleaned

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        config = {"split": data["split"], "prompt_limit": data["prompt_limit"], "teacher_judge": data["teacher_judge"],
                  "max_new_tokens": data["max_new_tokens"], "required_annotations": data["required_annotations"],
                  "teacher_dpo_id": data["teacher_dpo"].id if data["teacher_dpo"] else None,
                  "teacher_sft_id": data["teacher_sft"].id if data["teacher_sft"] else None}
        if data.get("benchmarks"):
            config.update(benchmarks=data["benchmarks"].split(","), benchmark_limit=data.get("benchmark_limit"),
                          benchmark_api=data.get("benchmark_api") or "completions")
        return {"name": data["name"], "teacher": data["teacher"], "model_versions": list(data["model_versions"]),
                "prompt_set": data["prompt_set"], "judges": data["judges"], "config": config}


class SendToHumansForm(forms.Form):
    required_annotations = forms.IntegerField(min_value=1, max_value=10, initial=1)


class NextRoundForm(forms.Form):
    student = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), help_text="Default: the latest student.")
    teacher = forms.ModelChoiceField(queryset=ModelVersion.objects.none())
    prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.none(), help_text="Fresh prompts come from here.")
    prompt_count = forms.IntegerField(min_value=1, max_value=5000, initial=20, label="Fresh prompts")

    def __init__(self, *args, project, latest_student=None, **kwargs):
        super().__init__(*args, **kwargs)
        versions = ModelVersion.objects.filter(project=project)
        self.fields["student"].queryset = versions.exclude(role=ModelRole.TEACHER)
        self.fields["teacher"].queryset = versions.filter(role=ModelRole.TEACHER)
        self.fields["prompt_set"].queryset = PromptSet.objects.filter(project=project)
        self.fields["student"].initial = latest_student
        for name in ("student", "teacher"):
            self.fields[name].label_from_instance = version_label
        self.endpoint_notes = endpoint_notes(versions.exclude(endpoint_url=""))
        self.fields["teacher"].initial = self.fields["teacher"].queryset.first()
        self.fields["prompt_set"].initial = self.fields["prompt_set"].queryset.first()

    def clean(self):
        """A loop round generates with both models (its disagreement priority from the teacher's
        token log-probs is the worker's to route: black-box teachers give none)."""
        cleaned = super().clean()
        for field in ("student", "teacher"):
            why = endpoint_refusal(cleaned.get(field), "generation")
            if why:
                self.add_error(field, why)
        return cleaned

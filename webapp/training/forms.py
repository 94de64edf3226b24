"""The launch form, built from ml.config: one field per dataclass field of the chosen method, with its
help text, bounds and choices from the field metadata, and validation by `config_from_dict` itself,
so the browser and the worker accept exactly the same configs. ADPA+ nests two stage configs; their
fields are named `dckd.<name>` / `adpa.<name>`. Endpoint teachers are marked in the pickers with what
each can serve; a method an endpoint's capability cannot serve is refused at submit time."""
from django import forms
from django.core.exceptions import ValidationError

from ml.config import ConfigError, config_from_dict, config_schema, config_to_dict
from webapp.annotation.models import PreferenceSnapshot
from webapp.catalog.models import ModelRole, ModelVersion, PromptSet
from webapp.catalog.selectors import endpoint_notes, endpoint_refusal, version_label
from webapp.training.models import Method
from webapp.training.tokenizers import tokenizer_notes, tokenizer_refusal
from webapp.training.monitor import DEFAULT_SAMPLE_SIZE, REFERENCE_EVALUATIONS, detectable_drop

CONFIG_PREFIX = "cfg:"


def _config_field(entry: dict, initial):
    bounds = " · ".join(part for part in (
        f"{'>' if entry.get('min_exclusive') else '≥'} {entry['min']:g}" if entry.get("min") is not None else "",
        f"≤ {entry['max']:g}" if entry.get("max") is not None else "") if part)
    help_text = entry["help"] + (f" ({bounds})" if bounds and entry["type"] != "bool" else "")
    common = {"label": entry["name"], "help_text": help_text, "initial": initial}
    if entry["type"] == "bool":
        return forms.BooleanField(required=False, **common)
    if entry.get("choices"):
        return forms.ChoiceField(choices=[(c, c) for c in entry["choices"]], **common)
    if entry["type"] == "int":  # left empty (or absent from an older client's form): the dataclass default
        return forms.IntegerField(required=False, **common)
    # Floats as text: 5e-7 stays readable (a number input would show 0.0000005) and config_from_dict parses it.
    return forms.CharField(widget=forms.TextInput(attrs={"inputmode": "decimal", "spellcheck": "false"}),
                           required=False, **common)


def _flatten(schema: list, values: dict, prefix: str = "") -> list[tuple[str, dict, object]]:
    out = []
    for entry in schema:
        if entry["type"] == "group":
            out += _flatten(entry["fields"], values.get(entry["name"], {}), f"{prefix}{entry['name']}.")
        else:
            out.append((prefix + entry["name"], entry, values.get(entry["name"], entry["default"])))
    return out


class RunForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Optional; a name is made up otherwise.")
    snapshot = forms.ModelChoiceField(queryset=PreferenceSnapshot.objects.none(), help_text="Training pairs.")
    student = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), help_text="The student to start from.")
    teacher = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(), required=False,
        help_text="Teacher for KD, TAID, sequence-level KD (SFT target=teacher) and teacher-as-reference DPO.")
    teacher_sft = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(), required=False, label="Teacher π_sft",
        help_text="The teacher after SFT: ADPA's advantage reference, and the start of π_dpo when none is given.")
    teacher_dpo = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(), required=False, label="Teacher π_dpo",
        help_text="The teacher after DPO (DCKD/ADPA/ADPA+). Leave empty to train it from π_sft on the snapshot "
                  "first (β=0.01); the result is cached and registered as a teacher model version.")
    report_to = forms.CharField(
        required=False, max_length=100, label="Experiment trackers",
        help_text="Comma-separated: tensorboard, mlflow, wandb, trackio; none = off. Empty = the deployment's "
                  "setting (DISTILLERY_REPORT_TO).")
    eval_prompt_set = forms.ModelChoiceField(
        queryset=PromptSet.objects.none(), required=False, label="Checkpoint evaluation: held-out set",
        help_text="Evaluate checkpoints during the run on this set's eval-split prompts (oracle accuracy, "
                  "closeness to the teacher, win rate vs the teacher) and watch for teacher hacking.")
    eval_every_steps = forms.IntegerField(
        min_value=0, initial=0, required=False, label="Checkpoint evaluation: every N steps",
        help_text="0 = off. Needs checkpoints at those steps: save_every_steps must divide N.")
    eval_sample_size = forms.IntegerField(
        min_value=1, max_value=2000, initial=DEFAULT_SAMPLE_SIZE, required=False, label="Checkpoint evaluation: prompts",
        help_text="Held-out prompts per evaluation (a fixed sample, capped at the set's eval-split size). Every "
                  "checkpoint evaluation answers, scores and judges each one: the default detects a 10-point fall "
                  f"and costs about {DEFAULT_SAMPLE_SIZE // 32}x the time of 32 prompts, which detect only a "
                  f"{detectable_drop(32) * 100:.0f}-point fall.")
    eval_judge = forms.ChoiceField(choices=[("likelihood", "Teacher likelihood"), ("generative", "Teacher asked (generative)"),
                                            ("none", "No judge")], initial="likelihood", required=False, label="Checkpoint evaluation: judge",
                                   help_text="Win rate against the teacher, both presentation orders.")

    def __init__(self, *args, project, method: str, config: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.method = method
        models = ModelVersion.objects.filter(project=project)
        self.fields["snapshot"].queryset = PreferenceSnapshot.objects.filter(project=project)
        self.fields["eval_prompt_set"].queryset = PromptSet.objects.filter(project=project)
        self.fields["student"].queryset = models.filter(role=ModelRole.STUDENT)
        for name in ("teacher", "teacher_sft", "teacher_dpo"):
            self.fields[name].queryset = models.filter(role=ModelRole.TEACHER)
            self.fields[name].label_from_instance = version_label
        self.fields["student"].label_from_instance = version_label
        if method == "dckd":
            self.fields["teacher_dpo"].help_text += (" An endpoint teacher picked as π_sft or teacher is used as it is "
                                                     "as the DPO teacher (no π_dpo stage trains from an endpoint).")
        self.endpoint_notes = endpoint_notes(models.filter(role=ModelRole.TEACHER).exclude(endpoint_url=""))
        self.tokenizer_notes = tokenizer_notes(models.filter(role=ModelRole.TEACHER),
                                               models.filter(role=ModelRole.STUDENT), method)
        defaults = config_to_dict(config_from_dict(method, config or {}))
        self.config_names = []
        for dotted, entry, initial in _flatten(config_schema(method), defaults):
            self.fields[CONFIG_PREFIX + dotted] = _config_field(entry, initial)
            self.config_names.append(dotted)

    @property
    def method_label(self) -> str:
        return Method(self.method).label

    def config_groups(self) -> list[tuple[str, list]]:
        """[(group title, bound fields)]: "" for a flat config, one group per ADPA+ stage."""
        groups: dict[str, list] = {}
        for name in self.config_names:
            group = name.split(".")[0] if "." in name else ""
            groups.setdefault(group, []).append(self[CONFIG_PREFIX + name])
        return list(groups.items())

    def raw_config(self) -> dict:
        """The config fields as a nested dict of strings/bools, for config_from_dict(coerce_strings=True)."""
        config = {}
        for dotted in self.config_names:
            value = self.cleaned_data.get(CONFIG_PREFIX + dotted)
            if value is None or value == "":
                continue  # config_from_dict fills a missing key with its default
            *groups, leaf = dotted.split(".")
            target = config
            for group in groups:
                target = target.setdefault(group, {})
            target[leaf] = value if isinstance(value, bool) else str(value)
        return config

    def clean_report_to(self):
        from webapp.training.services import report_to_clean

        try:
            return report_to_clean(self.cleaned_data.get("report_to", ""))
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["report_to"]) from None

    def clean(self):
        cleaned = super().clean()
        if not any(CONFIG_PREFIX + n in self.errors for n in self.config_names):
            try:
                cleaned["config"] = config_to_dict(config_from_dict(self.method, self.raw_config(), coerce_strings=True))
            except ConfigError as exc:
                field = CONFIG_PREFIX + exc.field if exc.field and CONFIG_PREFIX + exc.field in self.fields else None
                self.add_error(field, str(exc))
        self._check_eval_cadence(cleaned)
        self._check_endpoint_teachers(cleaned)
        teacher = cleaned.get("teacher_sft") or cleaned.get("teacher_dpo") or cleaned.get("teacher")
        if why := tokenizer_refusal(self.method, cleaned.get("config") or {}, teacher, cleaned.get("student")):
            self.add_error("student", why)  # ml.cross_tokenizer: the worker would refuse it too
        return cleaned

    def _check_endpoint_teachers(self, cleaned) -> None:
        """Each endpoint teacher picked must serve this method (ml.endpoints.spec.methods_for). On top:
        DPO's teacher reference scores log-probs inside the loss (loaded weights). No π_dpo stage
        trains from an endpoint: for DCKD the worker uses an endpoint π_sft (or teacher) itself as the
        DPO teacher, and the page says so (endpoint_notes)."""
        config = cleaned.get("config") or {}
        for field in ("teacher", "teacher_sft", "teacher_dpo"):
            version = cleaned.get(field)
            why = endpoint_refusal(version, self.method)
            if why:
                self.add_error(field, why)
            elif version is not None and version.is_endpoint and self.method == "dpo" and field == "teacher" \
                    and config.get("reference") == "teacher":
                self.add_error(field, f"{version.name} is an endpoint: DPO with reference=teacher needs the teacher's "
                                      "weights in the loss; use reference=student, or a teacher with weights.")

    def eval_power(self) -> dict:
        """The smallest fall in the ground truth the teacher-hacking badge catches at the chosen sample
        size (80% power, between two of REFERENCE_EVALUATIONS evaluations), and `unit`, the same at
        one prompt, from which the page rescales it as the number changes (the drop goes as 1/sqrt(n))."""
        value = self["eval_sample_size"].value()
        try:
            size = max(1, int(value)) if value not in (None, "") else DEFAULT_SAMPLE_SIZE
        except (TypeError, ValueError):
            size = DEFAULT_SAMPLE_SIZE
        return {"size": size, "drop_points": f"{100 * detectable_drop(size):.1f}", "unit": detectable_drop(1),
                "evaluations": REFERENCE_EVALUATIONS}

    def _check_eval_cadence(self, cleaned) -> None:
        every, config = cleaned.get("eval_every_steps") or 0, cleaned.get("config")
        if every and not cleaned.get("eval_prompt_set"):
            self.add_error("eval_prompt_set", "Pick the held-out prompt set to evaluate checkpoints on.")
        stage = (config or {}).get("dckd", config) or {}  # ADPA+: its first stage's checkpoints
        save_every = stage.get("save_every_steps")
        if every and config is not None and (not save_every or every % save_every):
            self.add_error("eval_every_steps", f"Checkpoints are written every {save_every or 0} steps "
                                               f"(save_every_steps), so {every} is not a checkpoint step: set "
                                               f"save_every_steps to {every} or a divisor of it.")


class PresetForm(forms.Form):
    preset_name = forms.CharField(max_length=200, label="Preset name")

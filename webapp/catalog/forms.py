"""Forms of the catalog pages: registering a model version (weights, or an OpenAI-compatible endpoint),
and uploading a prompt file."""
from django import forms
from django.core.exceptions import ValidationError

from webapp.catalog.models import ModelRole, ModelVersion, Split, TeacherStage
from webapp.catalog.endpoints import endpoint_url_check, key_env_check
from webapp.catalog.services import model_source_check


class ModelVersionForm(forms.Form):
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=ModelRole.choices)
    stage = forms.ChoiceField(choices=TeacherStage.choices, initial=TeacherStage.BASE,
                              help_text="For a teacher: base, after SFT (π_sft) or after DPO (π_dpo).")
    source = forms.CharField(max_length=500, help_text="A model directory (with config.json) under the server's model roots, relative to its data dir or absolute, or a hub id like org/name.")
    revision = forms.CharField(max_length=100, required=False, help_text="Hub revision (branch, tag or commit); blank for local.")

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if ModelVersion.objects.filter(project=self.project, name=name).exists():
            raise forms.ValidationError(f"A model version named {name!r} already exists in this project.")
        return name

    def clean_source(self):
        try:
            return model_source_check(project=self.project, source=self.cleaned_data["source"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None


class EndpointForm(forms.Form):
    """An endpoint version: checked here for the page's errors, and again by endpoint_register."""
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=ModelRole.choices, initial=ModelRole.TEACHER)
    stage = forms.ChoiceField(choices=TeacherStage.choices, initial=TeacherStage.BASE, label="Teacher stage",
                              help_text="For a teacher: base, after SFT (π_sft) or after DPO (π_dpo).")
    endpoint_url = forms.CharField(max_length=500, label="Base URL",
                                   help_text="e.g. http://127.0.0.1:8000/v1 (with or without /v1); its host must be "
                                             "listed in DISTILLERY_ENDPOINT_HOSTS.")
    served_model = forms.CharField(max_length=200, label="Served model name",
                                   help_text="The model name the server answers to (vLLM's --served-model-name).")
    api_key_env = forms.CharField(max_length=100, required=False, label="API key variable (name only)",
                                  help_text="The NAME of the workers' environment variable holding the key, "
                                            "DISTILLERY_ENDPOINT_KEY_<NAME>; blank = no key. Never paste the key here.")
    concurrency = forms.IntegerField(min_value=1, max_value=256, initial=4, help_text="Requests in flight at most.")
    timeout_s = forms.FloatField(min_value=0.1, max_value=3600, initial=60.0, label="Timeout (s)",
                                 help_text="Per request.")
    rate_limit_per_s = forms.FloatField(min_value=0, max_value=10_000, initial=0.0, label="Rate limit (requests/s)",
                                        help_text="0 = no limit.")

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if ModelVersion.objects.filter(project=self.project, name=name).exists():
            raise forms.ValidationError(f"A model version named {name!r} already exists in this project.")
        return name

    def clean_endpoint_url(self):
        try:
            return endpoint_url_check(self.cleaned_data["endpoint_url"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None

    def clean_api_key_env(self):
        try:
            return key_env_check(self.cleaned_data["api_key_env"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None


class PromptUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV, parquet, or a .zip of an HF datasets directory (save_to_disk).")
    prompt_set = forms.CharField(max_length=200, help_text="An existing prompt set to add to, or a new name.")
    default_split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN,
                                      help_text="For rows without a 'split' field.")

"""Forms of the catalog pages: registering a model version, and uploading a prompt file."""
from django import forms
from django.core.exceptions import ValidationError

from webapp.catalog.models import ModelRole, ModelVersion, Split, TeacherStage
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


class PromptUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV, parquet, or a .zip of an HF datasets directory (save_to_disk).")
    prompt_set = forms.CharField(max_length=200, help_text="An existing prompt set to add to, or a new name.")
    default_split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN,
                                      help_text="For rows without a 'split' field.")

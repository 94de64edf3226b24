"""Forms of the catalog pages: registering a model version, and uploading a prompt file."""
import re
from pathlib import Path

from django import forms

from webapp.catalog.models import ModelRole, ModelVersion, Split, TeacherStage

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelVersionForm(forms.Form):
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=ModelRole.choices)
    stage = forms.ChoiceField(choices=TeacherStage.choices, initial=TeacherStage.BASE,
                              help_text="For a teacher: base, after SFT (π_sft) or after DPO (π_dpo).")
    source = forms.CharField(max_length=500, help_text="A local model directory (with config.json), or a hub id like org/name.")
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
        source = self.cleaned_data["source"].strip()
        path = Path(source).expanduser()
        if path.is_absolute() or source.startswith("."):
            if not (path / "config.json").is_file():
                raise forms.ValidationError(f"{source} is not a model directory (no config.json there).")
            return str(path.resolve())
        if not HUB_ID.match(source):
            raise forms.ValidationError("Give an absolute local directory or a hub id such as org/model-name.")
        return source


class PromptUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV, parquet, or a .zip of an HF datasets directory (save_to_disk).")
    prompt_set = forms.CharField(max_length=200, help_text="An existing prompt set to add to, or a new name.")
    default_split = forms.ChoiceField(choices=Split.choices, initial=Split.TRAIN,
                                      help_text="For rows without a 'split' field.")

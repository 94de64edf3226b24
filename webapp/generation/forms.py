"""The generation job form: which model versions, which prompts, k samples and sampling parameters.
Endpoint versions are marked in the picker, with what each can serve; one that cannot generate (probe
pending or failed, chat refused) is refused at submit time."""
from django import forms

from webapp.catalog.models import ModelVersion, PromptSet
from webapp.catalog.selectors import endpoint_notes, endpoint_refusal, version_label


class GenerationJobForm(forms.Form):
    model_versions = forms.ModelMultipleChoiceField(queryset=ModelVersion.objects.none(), widget=forms.CheckboxSelectMultiple,
                                                    help_text="Teacher and/or student versions; each answers every prompt.")
    prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.none())
    split = forms.ChoiceField(choices=[("", "all"), ("train", "train"), ("eval", "eval")], required=False)
    prompt_limit = forms.IntegerField(min_value=1, max_value=100_000, required=False, help_text="Only the first N prompts (blank = all).")
    k = forms.IntegerField(min_value=1, max_value=16, initial=2, help_text="Samples per prompt and model.")
    temperature = forms.FloatField(min_value=0, max_value=5, initial=1.0, help_text="0 = greedy.")
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=1.0)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=64)
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        # Imported datasets' stand-in versions (source "import:…") name where answers came from; no weights.
        self.fields["model_versions"].queryset = ModelVersion.objects.filter(project=project).exclude(source__startswith="import:")
        self.fields["model_versions"].label_from_instance = lambda mv: f"{mv.role}: {version_label(mv)}"
        self.fields["prompt_set"].queryset = PromptSet.objects.filter(project=project)
        self.endpoint_notes = endpoint_notes(self.fields["model_versions"].queryset.exclude(endpoint_url=""))

    def clean_model_versions(self):
        versions = self.cleaned_data["model_versions"]
        refusals = [why for why in (endpoint_refusal(mv, "generation") for mv in versions) if why]
        if refusals:
            raise forms.ValidationError(refusals)
        return versions

"""Pages that bring preference data in: upload a file in one of the formats preference_import.py
reads, see every problem with its line number (nothing imported), or the comparisons and
judgements it became, ready to be frozen into a snapshot."""
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from webapp.annotation import preference_import, preference_store
from webapp.annotation.models import ComparisonSource
from webapp.projects.models import Role
from webapp.projects.permissions import project_view

MAX_UPLOAD_BYTES = 200 * 1024 * 1024


class PreferenceUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, a JSON array (Label Studio / Argilla exports) or parquet.")
    format = forms.ChoiceField(choices=list(preference_import.FORMATS.items()), initial="auto")
    dataset = forms.CharField(max_length=80, required=False,
                              help_text="Names the source of these judgements (their judge is import:NAME); default: the file name.")

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None and upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(f"The file is over {MAX_UPLOAD_BYTES // 2 ** 20} MB; split it.")
        if upload is not None:
            stem = data.get("dataset") or upload.name.rsplit(".", 1)[0]
            data["dataset"] = preference_store.dataset_name_check("".join(c if c.isalnum() or c in "._-" else "-" for c in stem))
        return data


@project_view(Role.RESEARCHER)
def preference_upload(request, project):
    form = PreferenceUploadForm(request.POST or None, request.FILES or None)
    context = {"project": project, "role": request.role, "form": form,
               "imported": project.comparisons.filter(source=ComparisonSource.IMPORTED).count()}
    if request.method != "POST" or not form.is_valid():
        return render(request, "annotation/preference_import.html", context, status=422 if form.errors else 200)
    upload = form.cleaned_data["file"]
    result = preference_import.parse_preferences(upload.read(), filename=upload.name, fmt=form.cleaned_data["format"])
    if result.ok:
        try:
            counts = preference_store.preferences_import(project=project, dataset=form.cleaned_data["dataset"], rows=result.rows)
        except ValidationError as exc:
            result.errors.extend(exc.messages)
        else:
            messages.success(request, f"Imported {upload.name} ({preference_import.FORMATS[result.format]}) as dataset "
                                      f"{form.cleaned_data['dataset']}: {counts['comparisons']} comparisons with "
                                      f"{counts['judgements']} judgements from {counts['raters']} source(s).")
            return redirect("preference_upload", slug=project.slug)
    context.update(result=result, filename=upload.name)
    return render(request, "annotation/preference_import.html", context, status=422)

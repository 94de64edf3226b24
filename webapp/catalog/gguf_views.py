"""The catalog's GGUF page: a form that queues the conversion of a .gguf file on the server into a
model version (webapp.catalog.gguf), and the project's recent conversions with their progress,
outcome, or the worker's error (e.g. an unsupported quantization)."""
from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from webapp.catalog.gguf import gguf_conversion_create, gguf_conversions_for
from webapp.catalog.models import ModelRole, TeacherStage
from webapp.projects.models import Role
from webapp.projects.permissions import project_view


class GGUFForm(forms.Form):
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=ModelRole.choices)
    stage = forms.ChoiceField(choices=TeacherStage.choices, initial=TeacherStage.BASE)
    source = forms.CharField(max_length=500, label="GGUF file",
                             help_text="A .gguf file under the server's model roots (absolute, or relative to its data dir).")


@project_view(Role.RESEARCHER)
def gguf_register(request, project):
    form = GGUFForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            conversion = gguf_conversion_create(project=project, created_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)  # the error names its field: name or source
        else:
            messages.success(request, f"Converting {conversion.name}: it is registered when the conversion finishes.")
            return redirect("gguf_register", slug=project.slug)
    return render(request, "catalog/gguf.html", {"project": project, "role": request.role, "form": form,
                                                 "conversions": gguf_conversions_for(project=project)})

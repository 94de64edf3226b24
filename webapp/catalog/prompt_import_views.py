"""The page of a background prompt import (prompt_imports.py): its stage and progress, polled as
JSON while it runs, then the prompt set it filled, or every line-numbered problem of the file."""
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from webapp.catalog.models import PromptImport
from webapp.catalog.prompt_imports import status_of
from webapp.projects.models import Role
from webapp.projects.permissions import project_view


@project_view(Role.RESEARCHER)
def prompt_import_detail(request, project, import_id):
    job = get_object_or_404(PromptImport, project=project, pk=import_id)
    return render(request, "catalog/prompt_import.html", {"project": project, "role": request.role, "job": job})


@project_view(Role.RESEARCHER)
def prompt_import_status(request, project, import_id):
    return JsonResponse(status_of(get_object_or_404(PromptImport, project=project, pk=import_id)))

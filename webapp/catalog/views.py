"""Catalog pages: model versions (register by local path or hub id + revision, with lineage) and
prompt sets (upload → validate → preview → commit, and browse)."""
import json
import secrets

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp.catalog import importers, prompt_imports, selectors
from webapp.catalog.forms import EndpointForm, ModelVersionForm, PromptUploadForm
from webapp.catalog.models import PromptSet
from webapp.catalog.services import model_version_register, prompt_content_hash
from webapp.projects.models import Role
from webapp.projects.permissions import project_view

PREVIEW_ROWS = 20


@project_view(Role.RESEARCHER)
def catalog_home(request, project):
    form = ModelVersionForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            version = model_version_register(project=project, **form.cleaned_data)
        except IntegrityError:
            form.add_error("name", "That name is taken.")
        except ValidationError as exc:  # e.g. the weights changed between the check and the registration
            form.add_error("source", exc)
        else:
            messages.success(request, f"Registered {version.name} ({version.parameter_count or '?'} parameters).")
            return redirect("catalog_home", slug=project.slug)
    return catalog_page(request, project, form=form)


def catalog_page(request, project, *, form=None, endpoint_form=None, status=200):
    """The catalog page, with whichever registration form was posted bound (and its errors shown)."""
    context = {"project": project, "role": request.role, "form": form or ModelVersionForm(project=project),
               "endpoint_form": endpoint_form or EndpointForm(project=project),
               "endpoint_hosts": settings.ENDPOINT_HOSTS, "upload_form": PromptUploadForm(),
               "model_versions": selectors.model_versions_for(project=project),
               "prompt_sets": selectors.prompt_sets_for(project=project)}
    return render(request, "catalog/home.html", context, status=status)


@project_view(Role.RESEARCHER)
def prompt_upload(request, project):
    """Step 1: parse and validate; show every error, or a preview and a commit button."""
    form = PromptUploadForm(request.POST or None, request.FILES or None)
    context = {"project": project, "role": request.role, "form": form}
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > prompt_imports.BACKGROUND_BYTES:  # big files import on a worker, the page shows progress
            job = prompt_imports.prompt_import_start(project=project, upload=upload, created_by=request.user,
                                                     prompt_set_name=form.cleaned_data["prompt_set"],
                                                     default_split=form.cleaned_data["default_split"])
            return redirect("prompt_import_detail", slug=project.slug, import_id=job.pk)
        result = importers.parse_upload(upload.read(), filename=upload.name, default_split=form.cleaned_data["default_split"])
        context.update(result=result, filename=upload.name)
        if result.ok:
            context.update(_stage(request, project, form.cleaned_data["prompt_set"], result))
        return render(request, "catalog/import.html", context, status=200 if result.ok else 422)
    return render(request, "catalog/import.html", context)


def _stage(request, project, set_name, result) -> dict:
    token = secrets.token_hex(16)
    path = importers.staged_path(project=project, user=request.user, token=token)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"prompt_set": set_name, "rows": result.rows}))
    existing = selectors.existing_hashes(project=project, prompt_set_name=set_name)
    hashes = {prompt_content_hash(text=r.get("text", ""), messages=r.get("messages")) for r in result.rows}
    return {"token": token, "prompt_set_name": set_name, "preview": result.rows[:PREVIEW_ROWS],
            "new_count": len(hashes - existing), "duplicate_count": len(result.rows) - len(hashes - existing)}


@require_POST
@project_view(Role.RESEARCHER)
def prompt_upload_commit(request, project):
    """Step 2: import the staged rows atomically (all or nothing)."""
    try:
        path = importers.staged_path(project=project, user=request.user, token=request.POST.get("token", ""))
        staged = json.loads(path.read_text())
    except (ValueError, OSError):
        messages.error(request, "This preview has expired or was already imported; upload the file again.")
        return redirect("prompt_upload", slug=project.slug)
    prompt_set, created, duplicates = importers.prompts_import(project=project, prompt_set_name=staged["prompt_set"], rows=staged["rows"])
    path.unlink(missing_ok=True)
    messages.success(request, f"Imported {created} prompts into {prompt_set.name} ({duplicates} duplicates skipped).")
    return redirect("prompt_set_detail", slug=project.slug, set_id=prompt_set.pk)


@project_view(Role.RESEARCHER)
def prompt_set_detail(request, project, set_id):
    prompt_set = get_object_or_404(PromptSet, project=project, pk=set_id)
    q, split, tag = request.GET.get("q", ""), request.GET.get("split", ""), request.GET.get("tag", "")
    page = Paginator(selectors.prompts_in(prompt_set=prompt_set, query=q, split=split, tag=tag), 50).get_page(request.GET.get("page"))
    return render(request, "catalog/prompt_set.html", {"project": project, "role": request.role, "prompt_set": prompt_set,
                                                         "page": page, "q": q, "split": split, "tag": tag})

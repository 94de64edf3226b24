"""API: prompt sets and prompt uploads (the upload page's validation, line-numbered errors, and its
background import for big files), and model versions (weights by path or hub id, and endpoints),
with the catalog page's forms and services. Researchers and admins, as the catalog pages."""
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from ninja import File, Form, Router, Schema
from ninja.files import UploadedFile

from webapp.api.access import ApiError, Launched, Page, bound, error, form_errors, job_out, page_of, project_for
from webapp.catalog import importers, prompt_imports, selectors
from webapp.catalog.endpoints import endpoint_register
from webapp.catalog.forms import EndpointForm, ModelVersionForm, PromptUploadForm
from webapp.catalog.models import PromptImport, PromptSet
from webapp.catalog.services import model_version_register
from webapp.projects.models import Role

router = Router(tags=["catalog"])


def prompt_set_out(prompt_set) -> dict:
    return {"id": prompt_set.pk, "name": prompt_set.name, "created_at": prompt_set.created_at,
            "counts": {k: getattr(prompt_set, k) for k in ("total", "train", "eval") if hasattr(prompt_set, k)}}


@router.get("/projects/{slug}/prompt-sets", response=Page)
def prompt_set_list(request, slug: str):
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, selectors.prompt_sets_for(project=project), prompt_set_out)


@router.get("/projects/{slug}/prompt-sets/{set_id}/prompts", response=Page)
def prompt_list(request, slug: str, set_id: int, q: str = "", split: str = "", tag: str = ""):
    project = project_for(request, slug, Role.RESEARCHER)
    prompt_set = get_object_or_404(PromptSet, project=project, pk=set_id)
    return page_of(request, selectors.prompts_in(prompt_set=prompt_set, query=q, split=split, tag=tag),
                   lambda p: {"id": p.pk, "text": p.text, "messages": p.messages, "split": p.split, "tags": p.tags,
                              "metadata": p.metadata})


def _import_errors(result) -> ApiError:
    """Every problem of the file, each with its line (or row) as the page lists them."""
    return ApiError(422, [{"loc": ["body", "file"], "msg": message, "type": "invalid_file"} for message in result.errors])


@router.post("/projects/{slug}/prompts/import", response={201: dict, 202: Launched})
def prompt_import(request, slug: str, file: File[UploadedFile], prompt_set: Form[str], default_split: Form[str] = "train"):
    """Upload a prompt file (JSONL, CSV, parquet, zipped HF dataset): validated as on the upload page
    (all errors at once, line-numbered; nothing imported when any) and imported in one transaction.
    Files over 2 MB import on a worker: 202 with the import job to poll."""
    project = project_for(request, slug, Role.RESEARCHER)
    form = PromptUploadForm({"prompt_set": prompt_set, "default_split": default_split}, {"file": file})
    if not form.is_valid():
        raise form_errors(form)
    upload, data = form.cleaned_data["file"], form.cleaned_data
    if upload.size > prompt_imports.BACKGROUND_BYTES:
        job = prompt_imports.prompt_import_start(project=project, upload=upload, created_by=request.user,
                                                 prompt_set_name=data["prompt_set"], default_split=data["default_split"])
        return 202, {"job": _import_out(project, job), "url": _import_url(project, job)}
    result = importers.parse_upload(upload.read(), filename=upload.name, default_split=data["default_split"])
    if not result.ok:
        raise _import_errors(result) if result.errors else error(422, "The file has no prompts.", loc=("body", "file"))
    imported, created, duplicates = importers.prompts_import(project=project, prompt_set_name=data["prompt_set"],
                                                            rows=result.rows)
    return 201, {"prompt_set": prompt_set_out(imported), "created": created, "duplicates": duplicates}


def _import_url(project, job) -> str:
    return f"/api/v1/projects/{project.slug}/prompt-imports/{job.pk}"


def _import_out(project, job) -> dict:
    return {**job_out(job, _import_url(project, job)), **prompt_imports.status_of(job)}


@router.get("/projects/{slug}/prompt-imports/{import_id}")
def prompt_import_detail(request, slug: str, import_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    return _import_out(project, get_object_or_404(PromptImport, project=project, pk=import_id))


def model_version_out(mv) -> dict:
    return {"id": mv.pk, "name": mv.name, "role": mv.role, "stage": mv.stage, "source": mv.source, "revision": mv.revision,
            "parameter_count": mv.parameter_count, "parent": mv.parent_id, "produced_by": mv.produced_by_id,
            "snapshot": mv.snapshot_id, "method": mv.method, "is_endpoint": mv.is_endpoint,
            "endpoint_url": mv.endpoint_url, "served_model": mv.served_model,
            "probe": None if not mv.is_endpoint else {"probed_at": mv.probed_at, "error": mv.probe_error,
                                                     "capability": mv.capability},
            "created_at": mv.created_at}


@router.get("/projects/{slug}/model-versions", response=Page)
def model_version_list(request, slug: str, role: str = ""):
    project = project_for(request, slug, Role.RESEARCHER)
    versions = selectors.model_versions_for(project=project)
    return page_of(request, versions.filter(role=role) if role else versions, model_version_out)


@router.get("/projects/{slug}/model-versions/{int:version_id}")
def model_version_detail(request, slug: str, version_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    return model_version_out(get_object_or_404(selectors.model_versions_for(project=project), pk=version_id))


class ModelVersionIn(Schema):
    name: str
    role: str
    source: str
    stage: str = "base"
    revision: str = ""


@router.post("/projects/{slug}/model-versions", response={201: dict})
def model_version_create(request, slug: str, body: ModelVersionIn):
    """Register weights: a model directory under the server's model roots, or a hub id (org/name)."""
    project = project_for(request, slug, Role.RESEARCHER)
    form = bound(ModelVersionForm, body.dict(), project=project)
    try:
        version = model_version_register(project=project, **form.cleaned_data)
    except IntegrityError:
        raise error(422, "That name is taken.", loc=("body", "name")) from None
    except ValidationError as exc:
        raise error(422, " ".join(exc.messages), loc=("body", "source")) from None
    return 201, model_version_out(version)


class EndpointIn(Schema):
    name: str
    endpoint_url: str
    served_model: str
    role: str = "teacher"
    stage: str = "base"
    api_key_env: str = ""
    concurrency: int = 4
    timeout_s: float = 60.0
    rate_limit_per_s: float = 0.0


@router.post("/projects/{slug}/model-versions/endpoints", response={202: dict})
def endpoint_create(request, slug: str, body: EndpointIn):
    """Register an OpenAI-compatible endpoint; its probe runs on a worker (the version's `probe`)."""
    project = project_for(request, slug, Role.RESEARCHER)
    form = bound(EndpointForm, body.dict(), project=project)
    try:
        version = endpoint_register(project=project, **form.cleaned_data)
    except IntegrityError:
        raise error(422, "That name is taken.", loc=("body", "name")) from None
    url = f"/api/v1/projects/{project.slug}/model-versions/{version.pk}"
    return 202, {"model_version": model_version_out(version), "url": url}

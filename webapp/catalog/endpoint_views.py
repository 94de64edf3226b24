"""Endpoint model versions in the catalog: registering one (the form beside weight registration on the
catalog page), a model version's page (for an endpoint: base URL, served model, the key's variable
NAME, the probed capability, the identity the server reported, and which methods it allows and why),
and Probe again. Researchers only, like the rest of the catalog."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp.catalog import selectors
from webapp.catalog.endpoints import endpoint_probe_request, endpoint_register
from webapp.catalog.forms import EndpointForm
from webapp.catalog.models import ModelVersion
from webapp.catalog.views import catalog_page
from webapp.projects.models import Role
from webapp.projects.permissions import project_view


@require_POST
@project_view(Role.RESEARCHER)
def endpoint_create(request, project):
    form = EndpointForm(request.POST, project=project)
    if form.is_valid():
        try:
            version = endpoint_register(project=project, **form.cleaned_data)
        except IntegrityError:
            form.add_error("name", "That name is taken.")
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Registered endpoint {version.name}: probing what it can serve.")
            return redirect("model_version_detail", slug=project.slug, version_id=version.pk)
    return catalog_page(request, project, endpoint_form=form, status=422)


@project_view(Role.RESEARCHER)
def model_version_detail(request, project, version_id):
    version = get_object_or_404(selectors.model_versions_for(project=project), pk=version_id)
    return render(request, "catalog/model_version.html", {
        "project": project, "role": request.role, "mv": version, "summary": selectors.endpoint_summary(version),
        "capability": version.capability or {}, "uses": selectors.endpoint_notes([version])[0]["uses"] if version.is_endpoint else []})


@require_POST
@project_view(Role.RESEARCHER)
def endpoint_probe(request, project, version_id):
    version = get_object_or_404(ModelVersion, project=project, pk=version_id)
    try:
        endpoint_probe_request(model_version=version)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Probing {version.name} again.")
    return redirect("model_version_detail", slug=project.slug, version_id=version.pk)

"""Default-queue catalog work: importing a large prompt file in the background
(webapp/catalog/prompt_imports.py holds the rules; this task only claims and runs it), and probing an
endpoint model version (ml.endpoints.probe) with the API key only this worker's environment holds."""
import dataclasses
import json
import logging
import os
import socket

from celery import shared_task
from django.conf import settings

from ml.endpoints.client import EndpointClient, EndpointError
from ml.endpoints.probe import probe
from ml.endpoints.spec import EndpointSpec, check_endpoint_url
from webapp.catalog.endpoints import endpoint_probe_store
from webapp.catalog.models import ModelVersion, PromptImport
from webapp.catalog.prompt_imports import JOBS, prompt_import_run
from webapp.lifecycle import job_run


@shared_task(name="workers.tasks.catalog.import_prompts")
def import_prompts(import_id: int) -> str:
    attempt = JOBS.claim(import_id, worker=f"{socket.gethostname()}:{os.getpid()}")
    if attempt is None:
        return "not claimed"
    job = PromptImport.objects.select_related("project").get(pk=import_id)
    return job_run(JOBS, job, attempt, lambda: prompt_import_run(job=job, attempt=attempt))


log = logging.getLogger(__name__)
PROBE_RETRIES = 2  # a probe answers the page soon; jobs keep the spec's own retries


@shared_task(name="workers.tasks.catalog.probe_endpoint")
def probe_endpoint(model_version_id: int) -> str:
    version = ModelVersion.objects.filter(pk=model_version_id).exclude(endpoint_url="").first()
    if version is None:
        return "not an endpoint"
    try:  # the host rule again, here: the allow-list may have shrunk since the registration
        check_endpoint_url(version.endpoint_url, settings.ENDPOINT_HOSTS)
        spec = dataclasses.replace(EndpointSpec.from_dict(version.endpoint_spec()), max_retries=PROBE_RETRIES)
        with EndpointClient(spec) as client:
            capability = probe(client)
    except (EndpointError, ValueError) as exc:  # messages name the key's variable, never its value
        endpoint_probe_store(model_version_id=version.pk, error=_without_key(str(exc) or type(exc).__name__, version))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - a pending probe must not stay pending forever
        error = f"the probe failed unexpectedly ({type(exc).__name__}: {str(exc)[:300]})"
        endpoint_probe_store(model_version_id=version.pk, error=_without_key(error, version))
        log.warning("probe of model version %s failed unexpectedly: %s", version.pk, type(exc).__name__)
        return "failed"
    capability = json.loads(_without_key(json.dumps(capability), version))  # server texts in its notes
    endpoint_probe_store(model_version_id=version.pk, capability=capability)
    return capability.get("kind", "probed")


def _without_key(text: str, version: ModelVersion) -> str:
    """Belt and braces over the client's own scrubbing: the key's value never reaches the database."""
    key = os.environ.get(version.api_key_env, "") if version.api_key_env else ""
    return text.replace(key, "[key]") if key else text

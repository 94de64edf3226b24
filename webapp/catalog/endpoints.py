"""Writes for endpoint model versions: a teacher (or any model) served by an OpenAI-compatible server
(vLLM, SGLang, a hosted API) instead of weights. Registration checks the URL against ENDPOINT_HOSTS and
the key reference against the DISTILLERY_ENDPOINT_KEY_* rule (ml.endpoints.spec, the same checks the
workers apply), stores the version with its probe pending, and queues the probe on the default queue
once the row is committed. The web process never reads the key: only its environment variable's NAME
is stored, and the worker (workers/tasks/catalog.py) reads the value when it probes.

An endpoint version's `source` is the label "endpoint:<served model>@<base URL>" (the column stays
non-empty for every version); workers route on `is_endpoint` and read endpoint_url/served_model."""
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ml.endpoints.spec import EndpointSpec, check_endpoint_url, check_key_env
from webapp.catalog.models import ENDPOINT_SOURCE_PREFIX, ModelVersion

log = logging.getLogger(__name__)
PROBE_TASK = "workers.tasks.catalog.probe_endpoint"
PROBE_ERROR_MAX = 1000


def endpoint_url_check(url: str) -> str:
    """The normalised base URL if its host is allowed here; a ValidationError says why not (and how to
    allow endpoints when DISTILLERY_ENDPOINT_HOSTS is empty)."""
    try:
        return check_endpoint_url(url, settings.ENDPOINT_HOSTS)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def key_env_check(name: str) -> str:
    try:
        return check_key_env(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def endpoint_register(*, project, name: str, role: str, stage: str = "base", endpoint_url: str, served_model: str,
                      api_key_env: str = "", concurrency: int = 4, timeout_s: float = 60.0,
                      rate_limit_per_s: float = 0.0) -> ModelVersion:
    """Registers an endpoint model version with its probe pending and queues the probe after commit.
    A ValidationError names the field at fault."""
    errors = {}
    try:
        endpoint_url = endpoint_url_check(endpoint_url)
    except ValidationError as exc:
        errors["endpoint_url"] = exc.messages
    try:
        api_key_env = key_env_check(api_key_env)
    except ValidationError as exc:
        errors["api_key_env"] = exc.messages
    served_model = (served_model or "").strip()
    if not served_model:
        errors["served_model"] = "Name the model the endpoint serves (its --served-model-name, or the API's model id)."
    if ModelVersion.objects.filter(project=project, name=name).exists():
        errors["name"] = f"A model version named {name!r} already exists in this project."
    if errors:
        raise ValidationError(errors)
    try:
        spec = EndpointSpec(base_url=endpoint_url, model=served_model, api_key_env=api_key_env, concurrency=concurrency,
                            timeout_s=timeout_s, rate_limit_per_s=rate_limit_per_s)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project, name=name, role=role, stage=stage,
            source=f"{ENDPOINT_SOURCE_PREFIX}{served_model}@{endpoint_url}"[:500],
            endpoint_url=spec.base_url, served_model=spec.model, api_key_env=spec.api_key_env,
            concurrency=spec.concurrency, timeout_s=spec.timeout_s, rate_limit_per_s=spec.rate_limit_per_s)
        _enqueue_probe(version.pk)
    return version


def endpoint_probe_request(*, model_version: ModelVersion) -> None:
    """Marks the probe pending again (the last capability stays until the new one arrives) and queues it."""
    if not model_version.is_endpoint:
        raise ValidationError(f"{model_version.name} is not an endpoint; only endpoints are probed.")
    with transaction.atomic():
        ModelVersion.objects.filter(pk=model_version.pk).update(probed_at=None, probe_error="")
        _enqueue_probe(model_version.pk)


def _enqueue_probe(version_id: int) -> None:
    """After commit, so the worker finds the row. A broker that is down must not lose the request
    silently: the version then shows why, and Probe again retries."""

    def send():
        from webapp.celery import app

        try:
            app.send_task(PROBE_TASK, args=(version_id,))
        except Exception as exc:  # noqa: BLE001 - any broker failure ends up on the page
            log.warning("could not queue the probe of model version %s: %s", version_id, type(exc).__name__)
            endpoint_probe_store(model_version_id=version_id,
                                 error=f"could not queue the probe ({type(exc).__name__}: the broker is unavailable?); "
                                       "press Probe again")

    transaction.on_commit(send, robust=True)


def endpoint_probe_store(*, model_version_id: int, capability: dict | None = None, error: str = "") -> bool:
    """Stores a probe's outcome: the capability record, or the error (the capability then cleared, so
    nothing is allowed on a server that no longer answers as probed). False if the version is gone."""
    if error:
        fields = {"capability": None, "probe_error": error[:PROBE_ERROR_MAX]}
    else:
        fields = {"capability": capability or {}, "probe_error": ""}
    return bool(ModelVersion.objects.filter(pk=model_version_id).exclude(endpoint_url="")
                .update(probed_at=timezone.now(), **fields))

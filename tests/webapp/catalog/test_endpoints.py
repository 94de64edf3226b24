"""Endpoint model versions on the web side: registration (URL allow-list, key variable names, roles),
the probe queued after commit and stored, Probe again, the model page, and every form that picks a
teacher marking endpoint versions and refusing a method their capability cannot serve. No server is
needed here (tests/webapp/catalog/test_endpoint_probe.py talks to real ones)."""
import httpx
import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ml.endpoints.spec import BLACK_BOX, WHITE_BOX
from webapp.catalog.endpoints import endpoint_probe_store, endpoint_register, endpoint_url_check
from webapp.catalog.models import ModelVersion
from webapp.celery import app

pytestmark = pytest.mark.django_db

VALID = {"name": "big-teacher", "role": "teacher", "stage": "base", "endpoint_url": "http://127.0.0.1:8765",
         "served_model": "demo-teacher", "api_key_env": "DISTILLERY_ENDPOINT_KEY_TEST", "concurrency": 4,
         "timeout_s": 30, "rate_limit_per_s": 0}
WHITE = {"kind": WHITE_BOX, "chat": True, "top_logprobs_max": 20, "prompt_logprobs": 50, "tokenizer_fingerprint": "ab" * 32,
         "model": {"id": "demo-teacher", "root": "/models/teacher", "max_model_len": 512}}
BLACK = {"kind": BLACK_BOX, "chat": True, "top_logprobs_max": 5, "prompt_logprobs": 0, "model": {"id": "gpt-x"},
         "notes": {"tokenize": "404 Not Found"}}


@pytest.fixture
def hosts(settings):
    settings.ENDPOINT_HOSTS = ["127.0.0.1"]
    return settings


@pytest.fixture
def sent(monkeypatch):
    """Tasks the web side queues (by name), instead of a broker."""
    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), kwargs=None, **_: calls.append((name, tuple(args))))
    return calls


def _endpoint(project, capability=None, error="", **overrides):
    version = endpoint_register(project=project, **{**VALID, **overrides})
    if capability is not None or error:
        endpoint_probe_store(model_version_id=version.pk, capability=capability, error=error)
    return ModelVersion.objects.get(pk=version.pk)


def test_register_endpoint_queues_the_probe_after_commit(client_for, project, researcher, hosts, sent,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(researcher).post(f"/p/{project.slug}/catalog/endpoints/", VALID)
    version = ModelVersion.objects.get(name="big-teacher")
    assert response.status_code == 302 and response["Location"].endswith(f"/catalog/models/{version.pk}/")
    assert version.is_endpoint and version.endpoint_url == "http://127.0.0.1:8765/v1"
    assert version.source == "endpoint:demo-teacher@http://127.0.0.1:8765/v1" and version.parameter_count is None
    assert version.probe_state == "pending" and version.capability is None
    assert version.endpoint_spec() == {"base_url": "http://127.0.0.1:8765/v1", "model": "demo-teacher",
                                       "api_key_env": "DISTILLERY_ENDPOINT_KEY_TEST", "concurrency": 4,
                                       "timeout_s": 30.0, "rate_limit_per_s": 0.0}
    assert sent == [("workers.tasks.catalog.probe_endpoint", (version.pk,))]
    page = client_for(researcher).get(f"/p/{project.slug}/catalog/models/{version.pk}/").content.decode()
    assert 'data-state="pending"' in page and "DISTILLERY_ENDPOINT_KEY_TEST" in page and "Probe again" in page


def test_a_broker_that_is_down_leaves_a_reason_not_a_silent_pending(project, hosts, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    def down(*args, **kwargs):
        raise ConnectionError("redis gone")

    monkeypatch.setattr(app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        version = endpoint_register(project=project, **VALID)
    version.refresh_from_db()
    assert version.probe_state == "failed" and "could not queue the probe" in version.probe_error


def test_endpoints_are_off_until_hosts_are_listed(client_for, project, researcher, settings, sent):
    settings.ENDPOINT_HOSTS = []
    client = client_for(researcher)
    assert "Endpoints are off on this server" in client.get(f"/p/{project.slug}/catalog/").content.decode()
    response = client.post(f"/p/{project.slug}/catalog/endpoints/", VALID)
    assert response.status_code == 422 and "set DISTILLERY_ENDPOINT_HOSTS" in response.content.decode()
    assert not ModelVersion.objects.exists() and not sent


@pytest.mark.parametrize("url, reason", [
    ("http://169.254.169.254/v1", "is not in DISTILLERY_ENDPOINT_HOSTS"),  # cloud metadata: not listed
    ("http://localhost:8765/v1", "is not in DISTILLERY_ENDPOINT_HOSTS"),  # same machine, another name
    ("http://10.0.0.7:8765/v1", "is not in DISTILLERY_ENDPOINT_HOSTS"),
    ("http://user:pw@127.0.0.1:8765/v1", "user:password"),
    ("http://evil.example@127.0.0.1/v1", "user:password"),
    ("ftp://127.0.0.1/v1", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("127.0.0.1:8765/v1", "http:// or https://"),
    ("http://127.0.0.1:8765/v1?x=1", "query or fragment"),
    ("http://127.0.0.1:8765/v1#frag", "query or fragment"),
])
def test_url_allow_list_refusals(client_for, project, researcher, hosts, sent, url, reason):
    response = client_for(researcher).post(f"/p/{project.slug}/catalog/endpoints/", {**VALID, "endpoint_url": url})
    assert response.status_code == 422 and reason in response.content.decode().replace("&#x27;", "'")
    assert not ModelVersion.objects.exists() and not sent


def test_host_port_entries_limit_the_port(project, settings, sent):
    settings.ENDPOINT_HOSTS = ["127.0.0.1:8765"]
    assert endpoint_register(project=project, **VALID).endpoint_url == "http://127.0.0.1:8765/v1"
    with pytest.raises(Exception, match="not in DISTILLERY_ENDPOINT_HOSTS"):
        endpoint_register(project=project, **{**VALID, "name": "other", "endpoint_url": "http://127.0.0.1:5432/v1"})


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "DJANGO_SECRET_KEY", "REDIS_URL", "HOME",
                                  "distillery_endpoint_key_test", "DISTILLERY_ENDPOINT_KEY_", "DISTILLERY_ENDPOINT_KEY_A-B",
                                  "sk-live-abc123"])
def test_key_variable_name_refusals(client_for, project, researcher, hosts, sent, name):
    response = client_for(researcher).post(f"/p/{project.slug}/catalog/endpoints/", {**VALID, "api_key_env": name})
    assert response.status_code == 422 and "DISTILLERY_ENDPOINT_KEY_&lt;NAME&gt;" in response.content.decode()
    assert not ModelVersion.objects.exists() and not sent


def test_the_service_refuses_too_and_the_database_constraint_backs_it(project, hosts, sent):
    from django.db import IntegrityError, transaction

    with pytest.raises(ValidationError) as caught:
        endpoint_register(project=project, **{**VALID, "api_key_env": "SECRET_KEY", "endpoint_url": "http://10.1.1.1/v1"})
    assert set(caught.value.message_dict) == {"api_key_env", "endpoint_url"}
    version = endpoint_register(project=project, **VALID)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(api_key_env="DATABASE_URL")


def test_weights_registration_is_untouched(client_for, project, researcher, hosts):
    response = client_for(researcher).post(f"/p/{project.slug}/catalog/", {"name": "hub", "role": "student",
                                                                            "stage": "base", "source": "org/model"})
    version = ModelVersion.objects.get(name="hub")
    assert response.status_code == 302 and not version.is_endpoint and version.probe_state == ""


@pytest.mark.parametrize("persona, status", [("annotator", 403), ("outsider", 404)])
def test_endpoint_views_need_the_researcher_role(request, client_for, project, hosts, sent, persona, status):
    version = _endpoint(project, WHITE)
    client = client_for(request.getfixturevalue(persona))
    base = f"/p/{project.slug}/catalog"
    assert client.post(f"{base}/endpoints/", {**VALID, "name": "mine"}).status_code == status
    assert client.get(f"{base}/models/{version.pk}/").status_code == status
    assert client.post(f"{base}/models/{version.pk}/probe").status_code == status
    assert ModelVersion.objects.count() == 1 and ModelVersion.objects.get().probe_state == "ok" and not sent


def test_anonymous_is_sent_to_log_in(client, project, hosts):
    response = client.post(f"/p/{project.slug}/catalog/endpoints/", VALID)
    assert response.status_code == 302 and "/login/" in response["Location"] and not ModelVersion.objects.exists()


def test_model_page_shows_the_capability_and_what_it_allows(client_for, project, researcher, hosts, sent):
    version = _endpoint(project, WHITE)
    page = client_for(researcher).get(f"/p/{project.slug}/catalog/models/{version.pk}/").content.decode()
    assert "http://127.0.0.1:8765/v1" in page and "demo-teacher" in page and "DISTILLERY_ENDPOINT_KEY_TEST" in page
    assert "<strong>white-box</strong>" in page and "top_logprobs up to 20" in page and "prompt_logprobs top-50 per position" in page
    assert "/models/teacher" in page and "max length 512" in page and "probed " in page
    assert "TAID interpolates full teacher logits" in page  # refused, with the reason
    catalog = client_for(researcher).get(f"/p/{project.slug}/catalog/").content.decode()
    assert "endpoint · white-box" in catalog


def test_failed_probe_shows_why_and_probe_again_requeues(client_for, project, researcher, hosts, sent,
                                                        django_capture_on_commit_callbacks):
    version = _endpoint(project, error="the endpoint refused the API key from $DISTILLERY_ENDPOINT_KEY_TEST")
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/catalog/models/{version.pk}/").content.decode()
    assert 'data-state="failed"' in page and "refused the API key from $DISTILLERY_ENDPOINT_KEY_TEST" in page
    assert "the last probe failed" in page  # every use refused, saying why
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/p/{project.slug}/catalog/models/{version.pk}/probe")
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.probe_state == "pending" and sent[-1] == ("workers.tasks.catalog.probe_endpoint", (version.pk,))


def test_probe_again_refuses_a_version_with_weights(client_for, project, researcher, sent):
    version = ModelVersion.objects.create(project=project, name="w", role="teacher", source="org/w")
    client = client_for(researcher)
    response = client.post(f"/p/{project.slug}/catalog/models/{version.pk}/probe", follow=True)
    assert "only endpoints are probed" in response.content.decode() and not sent


# Every page that picks a teacher: endpoint versions marked, what they allow shown, refusals at submit.

def _forms_world(project):
    from webapp.catalog.models import PromptSet

    black = _endpoint(project, BLACK, name="hosted")
    white = _endpoint(project, WHITE, name="served")
    pending = _endpoint(project, None, name="pending")
    student = ModelVersion.objects.create(project=project, name="student", role="student", source="org/student")
    prompts = PromptSet.objects.create(project=project, name="p")
    return black, white, pending, student, prompts


def test_generation_form_refuses_an_endpoint_whose_probe_is_pending(project, hosts, sent):
    from webapp.generation.forms import GenerationJobForm

    black, white, pending, student, prompts = _forms_world(project)
    form = GenerationJobForm({"model_versions": [pending.pk, student.pk], "prompt_set": prompts.pk, "k": 1,
                              "temperature": 1, "top_p": 1, "max_new_tokens": 8, "seed": 0}, project=project)
    assert not form.is_valid() and "pending is an endpoint (probe pending)" in str(form.errors["model_versions"])
    ok = GenerationJobForm({"model_versions": [black.pk, white.pk], "prompt_set": prompts.pk, "k": 1, "temperature": 1,
                            "top_p": 1, "max_new_tokens": 8, "seed": 0}, project=project)
    assert ok.is_valid(), ok.errors
    labels = dict(form.fields["model_versions"].choices)
    assert any("hosted" in str(v) and "endpoint, black-box" in str(v) for v in labels.values())


def test_judge_form_refuses_likelihood_on_a_black_box_endpoint(project, hosts, sent):
    from webapp.annotation.forms import JudgeJobForm

    black, white, *_ = _forms_world(project)
    data = {"teacher": black.pk, "method": "likelihood", "beta": 0.01, "scope": "unjudged"}
    form = JudgeJobForm(data, project=project)
    assert not form.is_valid()
    assert "no log-probabilities of given tokens" in str(form.errors["teacher"])
    assert JudgeJobForm({**data, "method": "generative"}, project=project).is_valid()
    white_likelihood = JudgeJobForm({**data, "teacher": white.pk}, project=project)  # allowed, not run by workers yet
    assert not white_likelihood.is_valid() and "generatively only" in str(white_likelihood.errors["teacher"])
    weights = ModelVersion.objects.create(project=project, name="sft-w", role="teacher", stage="sft", source="org/sft")
    mixed = JudgeJobForm({**data, "teacher": white.pk, "reference": weights.pk, "method": "implicit_reward"}, project=project)
    assert not mixed.is_valid() and "two endpoints" in str(mixed.errors["reference"])
    assert JudgeJobForm({**data, "teacher": weights.pk}, project=project).is_valid()  # weights: as before


def test_evaluation_form_refuses_a_judge_the_teacher_cannot_serve(project, hosts, sent):
    from webapp.evaluation.forms import EvaluationForm, NextRoundForm

    black, white, pending, student, prompts = _forms_world(project)
    data = {"name": "e", "teacher": black.pk, "model_versions": [student.pk], "prompt_set": prompts.pk, "split": "eval",
            "prompt_limit": 5, "judges": ["teacher"], "teacher_judge": "likelihood", "max_new_tokens": 8,
            "required_annotations": 1}
    form = EvaluationForm(data, project=project)
    assert not form.is_valid() and "Judge: likelihood is not possible" in str(form.errors["teacher_judge"])
    assert EvaluationForm({**data, "teacher_judge": "generative"}, project=project).is_valid()
    loop = NextRoundForm({"student": student.pk, "teacher": pending.pk, "prompt_set": prompts.pk, "prompt_count": 3},
                         project=project)
    assert not loop.is_valid() and "probe pending" in str(loop.errors["teacher"])


def test_training_form_refuses_token_level_methods_on_a_black_box_teacher(project, hosts, sent):
    from webapp.training.forms import RunForm

    black, white, pending, student, *_ = _forms_world(project)
    form = RunForm({"student": student.pk, "teacher_sft": black.pk, "teacher_dpo": black.pk}, project=project, method="dckd")
    form.is_valid()
    assert "DCKD is not possible" in str(form.errors["teacher_dpo"])
    taid = RunForm({"student": student.pk, "teacher": white.pk}, project=project, method="taid")
    taid.is_valid()
    assert "TAID interpolates full teacher logits" in str(taid.errors["teacher"])
    as_dpo = RunForm({"student": student.pk, "teacher_sft": white.pk}, project=project, method="dckd")
    as_dpo.is_valid()  # the worker uses the endpoint itself as the DPO teacher
    assert not {"teacher_sft", "teacher_dpo"} & set(as_dpo.errors)
    adpa = RunForm({"student": student.pk, "teacher_sft": white.pk, "teacher_dpo": white.pk}, project=project,
                   method="adpa")
    adpa.is_valid()
    assert "not computed from endpoints yet" in str(adpa.errors["teacher_dpo"])
    sft = RunForm({"student": student.pk, "teacher": black.pk}, project=project, method="sft")
    sft.is_valid()
    assert "teacher" not in sft.errors  # text only: a black-box teacher serves sequence-level KD


def test_pages_that_pick_a_teacher_list_what_each_endpoint_allows(client_for, project, researcher, hosts, sent):
    black, *_ = _forms_world(project)
    client = client_for(researcher)
    for url in ("generation/", "judge/", "training/new/?method=dckd", "evaluations/", "loop/"):
        page = client.get(f"/p/{project.slug}/{url}").content.decode()
        assert 'id="endpoint-uses"' in page and "hosted" in page and "endpoint · black-box" in page, url
        assert "no log-probabilities of given tokens" in page, url  # the why, not just a no


HOSTISH = ["127.0.0.1", "127.0.0.1:8765", "localhost", "[::1]", "127.0.0.1@evil.test", "evil.test@127.0.0.1",
           "127.0.0.1.evil.test", "127.1", "2130706433", "0x7f.0.0.1", "127.0.0.1%2f@evil.test", "127.0.0.1\\@evil.test",
           "evil.test#@127.0.0.1", "evil.test?@127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "\t127.0.0.1", "ǀ27.0.0.1"]


@given(url=st.text(max_size=40) | st.builds("{}://{}{}".format, st.sampled_from(["http", "https", "HTTP", "ftp", "", "gopher"]),
                                             st.sampled_from(HOSTISH), st.sampled_from(["", "/", "/v1", "/x/../v1", "/v1?a",
                                                                                        "/%0d%0a", "/ v1", "#x"])))
@hsettings(max_examples=300, deadline=None, database=None)
def test_no_url_gets_past_the_allow_list_to_another_host(url):
    """Whatever is typed, a URL the check accepts reaches 127.0.0.1 as httpx (the client) parses it."""
    from django.test import override_settings

    with override_settings(ENDPOINT_HOSTS=["127.0.0.1"]):
        try:
            normalised = endpoint_url_check(url)
        except ValidationError:
            return
    parsed = httpx.URL(normalised)
    assert parsed.host == "127.0.0.1" and parsed.userinfo == b"" and not parsed.query and not parsed.fragment
    assert parsed.scheme in ("http", "https") and normalised.endswith("/v1")

"""Fuzz (hypothesis) over the API's request bodies, sent with a token: random bytes, random JSON of
random types, hostile values (nesting thousands deep, NaN, 1e309), and bodies shaped like each write
operation's with random values for each field (real ids of the world among them, so the forms and
services run, not only the schema). Properties: never a 500; a rejected request (>= 400) answers
JSON errors with a field path and writes nothing (row counts of everything the API can write)."""
import json

import pytest
from django.contrib.auth import get_user_model
from hypothesis import given
from hypothesis import strategies as st

from tests.webapp.test_fuzz import DEEP, FILE_BYTES, FUZZ, JSON_VALUES, SPECIAL_NUMBERS, fuzz_world  # noqa: F401
from webapp.annotation.models import Comparison, JudgeJob, Judgement, PreferenceSnapshot
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.evaluation.models import Evaluation
from webapp.generation.models import Generation, GenerationJob
from webapp.projects.models import Membership
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db
WRITTEN = (Judgement, Comparison, Prompt, PromptSet, Generation, GenerationJob, JudgeJob, ModelVersion, PreferenceSnapshot,
           TrainingRun, Evaluation, Membership)
OPERATIONS = {  # path under the project -> its body's fields
    "/members": ["username", "role", "password"],
    "/annotation/submit": ["comparison", "ranking", "both_bad", "rationale", "flags", "time_spent_ms"],
    "/model-versions": ["name", "role", "source", "stage", "revision"],
    "/model-versions/endpoints": ["name", "endpoint_url", "served_model", "role", "stage", "api_key_env", "concurrency",
                                  "timeout_s", "rate_limit_per_s"],
    "/generation-jobs": ["model_versions", "prompt_set", "split", "prompt_limit", "k", "temperature", "top_p",
                         "max_new_tokens", "seed"],
    "/comparisons": ["job", "mode", "required_annotations", "kway_size", "priority", "limit"],
    "/judge-jobs": ["teacher", "method", "reference", "beta", "scope", "source", "limit"],
    "/snapshots": ["name", "rule", "tie_policy", "source_filter"],
    "/runs": ["method", "snapshot", "student", "teacher", "teacher_sft", "teacher_dpo", "name", "config",
              "eval_prompt_set", "eval_every_steps", "eval_sample_size", "eval_judge"],
    "/evaluations": ["name", "teacher", "model_versions", "prompt_set", "split", "prompt_limit", "judges", "teacher_judge",
                     "teacher_dpo", "teacher_sft", "max_new_tokens", "required_annotations", "benchmarks",
                     "benchmark_limit", "benchmark_api"],
}
WORDS = st.sampled_from(["teacher", "student", "base", "sft", "dpo", "train", "eval", "likelihood", "generative",
                         "teacher_student", "kway", "majority", "drop", "both", "dckd", "dpo", "sft", "annotator",
                         "researcher", "unjudged", "oracle", "http://127.0.0.1:9/v1", "org/name", "../../etc", ""])
CONFIGS = st.dictionaries(st.sampled_from(["max_steps", "beta", "learning_rate", "dckd", "nope", "lr_scheduler", "top_k"]),
                          JSON_VALUES | st.sampled_from(["1e-3", "cosine", "0"]), max_size=4)


def _counts() -> dict:
    return {model.__name__: model.objects.count() for model in WRITTEN} | {"User": get_user_model().objects.count()}


def _bodies(ids):
    value = JSON_VALUES | WORDS | st.sampled_from(ids) | st.lists(st.sampled_from(ids), max_size=3) | CONFIGS
    shaped = st.sampled_from(sorted(OPERATIONS)).flatmap(lambda path: st.tuples(st.just(path), st.fixed_dictionaries(
        {}, optional={key: value for key in OPERATIONS[path]}).map(lambda d: json.dumps(d, allow_nan=True).encode())))
    raw = st.tuples(st.sampled_from(sorted(OPERATIONS)), st.one_of(
        st.binary(max_size=300), st.builds(lambda v: json.dumps(v, allow_nan=True).encode(), JSON_VALUES),
        st.builds(lambda key, bad: ('{"%s": %s}' % (key, bad)).encode(), st.sampled_from(["name", "config", "ranking"]),
                  DEEP | SPECIAL_NUMBERS)))
    return shaped | raw


@pytest.fixture
def admin_api(admin_user, project, api_as, fuzz_world):  # noqa: F811
    return api_as(admin_user, project)


def test_write_bodies_never_500_and_rejections_write_nothing(admin_api, project, fuzz_world):  # noqa: F811
    ids = sorted({*fuzz_world["ids"], *ModelVersion.objects.values_list("pk", flat=True),
                  *PromptSet.objects.values_list("pk", flat=True), *GenerationJob.objects.values_list("pk", flat=True)})

    @FUZZ
    @given(request=_bodies(ids), content_type=st.sampled_from(["application/json", "text/plain"]))
    def run(request, content_type):
        path, body = request
        before = _counts()
        response = admin_api.client.generic("POST", f"/api/v1/projects/{project.slug}{path}", data=body,
                                            content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {admin_api.token}")
        assert response.status_code < 500, (path, body[:300])
        if response.status_code >= 400:
            assert _counts() == before, (path, body[:300], response.content[:300])
            detail = response.json()["detail"]
            assert isinstance(detail, list) and all("loc" in d and d["msg"] for d in detail), response.content[:300]

    run()


def test_prompt_uploads_never_500_and_rejected_ones_write_nothing(admin_api, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    @FUZZ
    @given(data=FILE_BYTES, filename=st.sampled_from(["p.jsonl", "p.csv", "p.parquet", "p.zip", "p.txt", ""]),
           prompt_set=st.text(max_size=30), split=WORDS | st.text(max_size=5))
    def run(data, filename, prompt_set, split):
        before = _counts()
        upload = SimpleUploadedFile(filename or "x", data) if filename else None
        response = admin_api.client.post(f"/api/v1/projects/{project.slug}/prompts/import",
                                         {"prompt_set": prompt_set, "default_split": split, **({"file": upload} if upload else {})},
                                         HTTP_AUTHORIZATION=f"Bearer {admin_api.token}")
        assert response.status_code < 500, (filename, data[:200])
        if response.status_code >= 400:
            assert _counts() == before
            assert all("loc" in d for d in response.json()["detail"])

    run()


def test_import_errors_are_line_numbered_like_the_page(admin_api, project):
    from django.core.files.uploadedfile import SimpleUploadedFile

    body = b'{"prompt": "fine"}\n{"prompt": ""}\nnot json\n'
    response = admin_api.client.post(f"/api/v1/projects/{project.slug}/prompts/import",
                                     {"prompt_set": "s", "file": SimpleUploadedFile("p.jsonl", body)},
                                     HTTP_AUTHORIZATION=f"Bearer {admin_api.token}")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "file"]] * len(detail) and len(detail) == 2
    assert detail[0]["msg"].startswith("line 2") and detail[1]["msg"].startswith("line 3")
    assert not PromptSet.objects.filter(project=project, name="s").exists()


def test_config_errors_carry_the_config_path(admin_api, project, fuzz_world):  # noqa: F811
    student = ModelVersion.objects.filter(project=project, role="student").first()
    response = admin_api.call("POST", f"/projects/{project.slug}/runs", {
        "method": "dpo", "snapshot": 10**9, "student": student.pk, "config": {"beta": -1, "nope": 1}})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": ["body", "config", "nope"], "msg": "dpo has no such setting.", "type": "unknown"}]
    response = admin_api.call("POST", f"/projects/{project.slug}/runs", {
        "method": "dpo", "snapshot": 10**9, "student": student.pk, "colour": "red"})
    assert response.json()["detail"][0]["loc"] == ["body", "colour"]
    response = admin_api.call("POST", f"/projects/{project.slug}/runs", {
        "method": "dpo", "snapshot": 10**9, "student": student.pk, "config": {"beta": -1}})
    locs = [d["loc"] for d in response.json()["detail"]]
    assert ["body", "config", "beta"] in locs and ["body", "snapshot"] in locs

"""Fuzz (hypothesis): the import parsers and every endpoint that reads JSON or a data file, fed random
bytes, random JSON of random types and sizes, and text in random encodings. Two properties:
- no server error: a parser returns a result (with errors) and never raises; an endpoint answers
  below 500 (Django's test client re-raises a view's exception, so a 500 fails the test);
- no partial write: when a request is rejected (status >= 400, or an upload that shows errors) the
  row counts of everything it could write are unchanged.
Issue 22 adds what broke before: nesting thousands of levels deep (a RecursionError and a 500),
NaN/Infinity/1e309 (parsed by Python, refused by jsonb at commit), rationales past their limit,
safetensors headers with overflowing shapes, and any username on the members page.
Bounded: a modest number of examples per property, no deadline (the machine is shared), no
example database, so the default run stays fast and deterministic enough to be quiet."""
import io
import json
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp.annotation import preference_import
from webapp.annotation.models import Comparison, ComparisonStatus, Judgement
from webapp.catalog import importers
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.generation.models import Generation

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30)
KEYS = st.sampled_from(["prompt", "text", "messages", "split", "tags", "chosen", "rejected", "comparison", "ranking",
                        "both_bad", "flags", "rationale", "time_spent_ms", "winner", "model_a", "conversation_a",
                        "role", "content", "data", "annotations", "result"])
RECORDS = st.dictionaries(KEYS, JSON_VALUES, max_size=6) | JSON_VALUES
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig"])


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


def _jsonl(records) -> str:
    return "\n".join(json.dumps(r, allow_nan=True) for r in records)


# What jsonb or the recursion limit cannot take, placed where a record's fields are.
DEPTHS = st.sampled_from([2, 31, 33, 1200, 5000]) | st.integers(min_value=1, max_value=3000)  # around the limits
DEEP = DEPTHS.map(lambda n: "[" * n + "]" * n) | DEPTHS.map(lambda n: '{"a": ' * n + "1" + "}" * n)
SPECIAL_NUMBERS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e309", "-1e400", "1e308", "[1, NaN]", '{"x": 1e999}'])
HOSTILE_LINES = st.builds(lambda key, value, prefix: prefix + '"%s": %s}' % (key, value), KEYS, DEEP | SPECIAL_NUMBERS,
                          st.sampled_from(['{"prompt": "p", ', '{"prompt": "p", "chosen": "a", "rejected": "b", ', "{"]))

FILE_BYTES = st.one_of(
    st.builds(lambda lines: "\n".join(lines).encode(), st.lists(HOSTILE_LINES, min_size=1, max_size=4)),
    st.builds(lambda lines: ("[" + ",\n".join(lines) + "]").encode(), st.lists(HOSTILE_LINES, min_size=1, max_size=4)),
    st.binary(max_size=3000),
    st.builds(lambda rs, enc: _encode(_jsonl(rs), enc), st.lists(RECORDS, max_size=8), ENCODINGS),
    st.builds(lambda rs: json.dumps(rs, allow_nan=True).encode(), st.lists(RECORDS, max_size=8)),
    st.builds(lambda text, enc: _encode(text, enc), st.text(max_size=600), ENCODINGS),
)


def _zip_of(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


ZIPS = st.builds(_zip_of, st.lists(st.tuples(
    st.sampled_from(["ds/state.json", "ds/dataset_info.json", "ds/dataset_dict.json", "ds/train/state.json",
                     "ds/data-00000-of-00001.arrow", "../escape.txt", "ds/x.json"]),
    FILE_BYTES), max_size=4))


def _parquet_of(columns) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


PARQUETS = st.integers(min_value=0, max_value=5).flatmap(lambda n: st.builds(_parquet_of, st.dictionaries(
    st.sampled_from(["prompt", "text", "split", "tags", "chosen", "rejected", "messages", "other"]),
    st.one_of(st.lists(st.text(max_size=30) | st.none(), min_size=n, max_size=n),
              st.lists(st.integers(-10, 10), min_size=n, max_size=n),
              st.lists(st.lists(st.text(max_size=8), max_size=3), min_size=n, max_size=n)), max_size=4)))
FILENAMES = st.sampled_from(["p.jsonl", "p.ndjson", "p.json", "p.csv", "p.parquet", "p.zip", "p.txt", "noext"])


# --- the parsers, directly ------------------------------------------------------------------------

@FUZZ
@given(data=FILE_BYTES | ZIPS | PARQUETS, filename=FILENAMES)
def test_prompt_parser_never_raises(data, filename):
    result = importers.parse_upload(data, filename=filename)
    assert isinstance(result, importers.ParseResult)
    assert result.ok or result.errors or not result.rows


@FUZZ
@given(data=FILE_BYTES | PARQUETS, filename=FILENAMES, fmt=st.sampled_from(list(preference_import.FORMATS)))
def test_preference_parser_never_raises(data, filename, fmt):
    result = preference_import.parse_preferences(data, filename=filename, fmt=fmt)
    assert isinstance(result, importers.ParseResult)


# --- the endpoints, through the full request path --------------------------------------------------

def _counts() -> dict:
    return {model.__name__: model.objects.count() for model in (Judgement, Comparison, Prompt, PromptSet, Generation,
                                                                 ModelVersion)}


@pytest.fixture
def fuzz_world(project, annotator, researcher):
    from tests.webapp.annotation.conftest import make_world
    from webapp.annotation.services import comparisons_build

    world = make_world(project, prompts=3)
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                    mode="teacher_student")
    return {"comparisons": comparisons, "ids": [c.pk for c in comparisons]}


def _ids(world):
    return st.sampled_from(world["ids"]) | st.integers() | st.floats() | st.text(max_size=10) | st.none() | st.booleans()


API_BODIES = st.one_of(
    st.binary(max_size=400),
    st.builds(lambda v, enc: _encode(json.dumps(v, allow_nan=True), enc), RECORDS, ENCODINGS),
    st.builds(lambda d: json.dumps(d, allow_nan=True).encode(), st.fixed_dictionaries(
        {}, optional={"comparison": JSON_VALUES, "ranking": JSON_VALUES, "both_bad": JSON_VALUES, "flags": JSON_VALUES,
                      "rationale": JSON_VALUES, "time_spent_ms": JSON_VALUES})),
    st.just(b'{"comparison": 1e309}'), st.just(b"[" * 5000 + b"]" * 5000), st.just(b'{"comparison": NaN}'),
    st.builds(lambda deep: ('{"comparison": 1, "ranking": %s}' % deep).encode(), DEEP | SPECIAL_NUMBERS),
    st.builds(lambda n: json.dumps({"comparison": 1, "ranking": [[1], [2]], "rationale": "x" * n}).encode(),
              st.integers(4990, 5010)),
)


@pytest.mark.django_db
def test_annotation_api_never_500s_and_rejections_write_nothing(client, annotator, project, fuzz_world):
    client.force_login(annotator)
    base = f"/p/{project.slug}/annotate/api/"
    ids = fuzz_world["ids"]

    @FUZZ
    @given(endpoint=st.sampled_from(["submit", "skip", "undo"]), body=API_BODIES,
           content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                         "application/json; charset=utf-16"]),
           # Well-formed submits too, with random rankings over the real candidate ids, so the
           # service layer (not only the body check) is fuzzed.
           real=st.one_of(st.none(), st.tuples(st.sampled_from(ids), st.lists(st.lists(
               st.integers(0, 200) | st.text(max_size=3), max_size=3), max_size=4), JSON_VALUES)))
    def run(endpoint, body, content_type, real):
        client.get(f"{base}next")  # an item on offer, as the page would hold
        if real is not None:
            comparison, ranking, both_bad = real
            body = json.dumps({"comparison": comparison, "ranking": ranking, "both_bad": both_bad}).encode()
        before = _counts()
        # generic(): the body goes out byte for byte (post() would re-encode it for a charset).
        response = client.generic("POST", f"{base}{endpoint}", data=body, content_type=content_type)
        assert response.status_code < 500
        if response.status_code >= 400:
            assert _counts() == before, (endpoint, body[:200], response.content[:300])
            assert "error" in response.json()

    run()


@pytest.mark.django_db
def test_json_endpoints_and_pages_never_500_on_any_query(client, annotator, researcher, project, fuzz_world):
    from webapp.training.models import TrainingRun

    student = ModelVersion.objects.get(project=project, role="student")
    run_id = TrainingRun.objects.create(project=project, name="r", method="dpo", student=student).pk

    prompt_set = PromptSet.objects.filter(project=project).first()

    @FUZZ
    @given(query=st.dictionaries(st.sampled_from(["after", "page", "x", "comparison", "step", "source", "sort", "q",
                                                  "runs", "model", "filter"]),
                                 st.text(max_size=20) | st.integers().map(str), max_size=3),
           path=st.sampled_from(["annotate/api/next", f"training/runs/{run_id}/points.json",
                                 f"training/runs/{run_id}/monitor.json", "training/runs/999999/points.json",
                                 # pages whose query parameters (pagination, filters) are parsed too
                                 "", "catalog/", f"catalog/prompts/{prompt_set.pk}/", "generation/", "judge/",
                                 "quality/", "snapshots/", "evaluations/", "leaderboard/", "loop/", "training/",
                                 "training/compare/", f"training/runs/{run_id}/", "annotate/"]))
    def run(query, path):
        client.force_login(researcher)
        response = client.get(f"/p/{project.slug}/{path}", query)
        assert response.status_code < 500

    run()


@pytest.mark.django_db
def test_adjudicate_is_all_or_nothing(client, researcher, project, fuzz_world):
    client.force_login(researcher)
    comparison = fuzz_world["comparisons"][0]
    gens = list(comparison.items.values_list("generation_id", flat=True))

    @FUZZ
    @given(ranking=st.one_of(st.text(max_size=60), st.builds(json.dumps, JSON_VALUES), DEEP, SPECIAL_NUMBERS,
                             st.builds(json.dumps, st.lists(st.lists(st.sampled_from(gens) | st.integers(), max_size=3),
                                                            max_size=3))),
           both_bad=st.sampled_from(["", "0", "1", "yes"]), rationale=st.sampled_from(["", "why", "y" * 5001]))
    def run(ranking, both_bad, rationale):
        Judgement.objects.filter(comparison=comparison).delete()
        Comparison.objects.filter(pk=comparison.pk).update(status=ComparisonStatus.DISPUTED)
        response = client.post(f"/p/{project.slug}/quality/adjudicate/{comparison.pk}",
                               {"ranking": ranking, "both_bad": both_bad, "rationale": rationale})
        assert response.status_code < 500
        stored = Judgement.objects.filter(comparison=comparison, is_adjudication=True).exists()
        status = Comparison.objects.get(pk=comparison.pk).status
        assert stored == (status == ComparisonStatus.ADJUDICATED)  # the verdict and the status, or neither

    run()


@pytest.mark.django_db
def test_uploads_never_500_and_rejected_uploads_write_nothing(client, researcher, project, fuzz_world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(researcher)

    @FUZZ
    @given(data=FILE_BYTES | ZIPS | PARQUETS, filename=FILENAMES,
           target=st.sampled_from(["catalog/prompts/upload/", "comparisons/import/"]),
           fmt=st.sampled_from(list(preference_import.FORMATS)), dataset=st.text(max_size=20))
    def run(data, filename, target, fmt, dataset):
        before = _counts()
        response = client.post(f"/p/{project.slug}/{target}", {
            "file": SimpleUploadedFile(filename, data), "prompt_set": dataset or "fuzz", "default_split": "train",
            "format": fmt, "dataset": dataset})
        assert response.status_code < 500
        if response.status_code >= 400:
            assert _counts() == before
        if target == "catalog/prompts/upload/":
            assert _counts() == before  # step 1 only stages: nothing is written before the commit
            token = (response.context or {}).get("token") if hasattr(response, "context") else None
            commit = client.post(f"/p/{project.slug}/catalog/prompts/upload/commit", {"token": token or dataset})
            assert commit.status_code < 500
            if commit.status_code >= 400:
                assert _counts() == before

    run()


# --- issue 22: safetensors headers and the members page ---------------------------------------------

SHAPES = st.lists(st.integers(min_value=0, max_value=2**70), max_size=6) | \
    st.lists(st.integers(min_value=-3, max_value=2**70) | st.floats(allow_nan=True) | st.text(max_size=3), max_size=20)
HEADERS = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda tensors: json.dumps(tensors, allow_nan=True).encode(), st.dictionaries(
        st.text(max_size=8), st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "BF16"]), "shape": SHAPES}), max_size=4)),
    st.builds(lambda deep: ('{"w": %s}' % deep).encode(), DEEP | SPECIAL_NUMBERS),
)


@FUZZ
@given(header=HEADERS, declared=st.none() | st.integers(min_value=0, max_value=2**64 - 1))
def test_safetensors_headers_give_a_count_or_a_reason(tmp_path_factory, header, declared):
    import struct

    from django.core.exceptions import ValidationError

    from webapp.catalog.services import safetensors_parameter_count

    folder = tmp_path_factory.mktemp("model")
    length = len(header) if declared is None else declared
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", length) + header)
    try:
        count = safetensors_parameter_count(str(folder))
    except ValidationError as exc:
        assert "safetensors" in exc.messages[0]
    else:
        assert isinstance(count, int) and 0 <= count < 2**63  # fits parameter_count's bigint


@pytest.mark.django_db
def test_members_page_never_500s_and_makes_only_valid_users(client, admin_user, project, django_user_model):
    import re

    client.force_login(admin_user)

    @FUZZ
    @given(username=st.text(max_size=160) | st.sampled_from(["nia", "nia ", "<b>x</b>", "a/b", "ß.ok+1@x", "x" * 151]),
           password=st.sampled_from(["", "short", "a-long-enough-passphrase-42"]),
           role=st.sampled_from(["annotator", "researcher", "admin", "owner", ""]))
    def run(username, password, role):
        response = client.post(f"/p/{project.slug}/members/", {"username": username, "password": password, "role": role})
        assert response.status_code < 500
        for name in django_user_model.objects.values_list("username", flat=True):
            assert re.fullmatch(r"[\w.@+-]{1,150}", name), name

    run()

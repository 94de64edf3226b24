"""One round of the loop driven through distillery_client (the Python client and the `distillery`
CLI, in this process) against the real ASGI server and real gpu/default Celery workers, with a
personal token and never a session cookie: import prompts, register the tiny demo teacher and
student, generate, build comparisons, teacher-judge, freeze a snapshot, train DCKD (--wait, with
the progress bar), register a checkpoint, evaluate with intervals, and download the snapshot and
the judgements."""
import json
import shutil
import zipfile
from pathlib import Path

import httpx
import pytest

from distillery_client import Distillery
from distillery_client.cli import main as cli
from tests.webapp.conftest import admin_user, project, researcher  # noqa: F401  (fixtures)
from webapp.api.tokens import token_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DCKD = ["max_steps=4", "save_every_steps=2", "batch_size=4", "grad_accum=1", "max_length=64", "learning_rate=1e-4",
        "warmup_ratio=0", "lr_scheduler=constant", "top_k=8"]


def _run_cli(capsys, *argv) -> dict | list:
    capsys.readouterr()
    code = cli(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, (argv, out, err)
    return json.loads(out), err


@pytest.fixture
def sent_headers(monkeypatch):
    """Every request any httpx client sends in this test, by its headers."""
    seen, send = [], httpx.Client.send

    def recording(self, request, **kwargs):
        seen.append(dict(request.headers))
        return send(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", recording)
    return seen


@pytest.mark.timeout(900)
def test_a_whole_round_through_the_client_without_a_session(asgi_server, celery_workers, service_env, tiny_demo_dir,
                                                            project, researcher, tmp_path, capsys, monkeypatch,
                                                            sent_headers):
    models = Path(service_env["DISTILLERY_DATA_DIR"]) / "models" / f"p{project.pk}"  # under the server's model roots
    for name in ("teacher", "student"):
        shutil.copytree(tiny_demo_dir / name, models / name)
    prompts = tmp_path / "tasks.jsonl"
    lines = [json.loads(line) | {"split": split} for split, n in (("train", 8), ("eval", 6))
             for line in (tiny_demo_dir / "prompts" / f"{split}.jsonl").read_text().splitlines()[:n]]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    _, token = token_create(user=researcher, name="loop", projects=[project], can_write=True)
    monkeypatch.setenv("DISTILLERY_URL", asgi_server)
    monkeypatch.setenv("DISTILLERY_TOKEN", token)
    monkeypatch.chdir(tmp_path)
    slug, api = project.slug, Distillery()

    imported, _ = _run_cli(capsys, "import", str(prompts), "-p", slug, "--set", "tasks")
    assert imported["created"] + imported["duplicates"] == 14 and imported["created"] >= 12
    prompt_set = imported["prompt_set"]["id"]
    teacher = api.register_model(slug, name="tiny-teacher", role="teacher", stage="sft", source=str(models / "teacher"))
    student = api.register_model(slug, name="tiny-student", role="student", source=str(models / "student"))

    job = api.wait(api.generate(slug, model_versions=[teacher["id"], student["id"]], prompt_set=prompt_set, split="train",
                                k=2, max_new_tokens=12), poll=0.5)
    assert job["done"] == job["total"] == 16
    built = api.build_comparisons(slug, job=job["id"], mode="teacher_student")
    assert built["created"] > 0  # identical answers make no comparison
    judged, _ = _run_cli(capsys, "judge", "-p", slug, "--teacher", str(teacher["id"]), "--method", "likelihood",
                         "--wait", "--poll", "0.5")
    assert judged["status"] == "succeeded"
    snapshot = api.freeze(slug, "round-1")
    assert snapshot["pair_count"] > 0

    run, err = _run_cli(capsys, "runs", "launch", "--method", "dckd", "--snapshot", str(snapshot["id"]), "-p", slug,
                        "--wait", "--poll", "0.5", *[a for kv in DCKD for a in ("--set", kv)])
    assert run["status"] == "succeeded" and run["done"] == run["total"] == 4, run
    assert "[" in err and "4/4" in err  # the progress bar
    metrics = api.metrics(slug, run["id"])
    assert [p["step"] for p in metrics["points"]] == [1, 2, 3, 4] and "loss" in metrics["points"][0]["values"]
    checkpoint = next(c for c in api.checkpoints(slug, run["id"]) if not c["is_final"])
    at_step_2 = api.register_checkpoint(slug, run["id"], checkpoint["step"])
    assert at_step_2["parent"] == student["id"] and at_step_2["snapshot"] == snapshot["id"]
    trained = api.run(slug, run["id"])["model_versions"]
    assert trained

    evaluation = api.wait(api.evaluate(slug, name="round 1", teacher=teacher["id"], model_versions=[student["id"], at_step_2["id"]],
                                       prompt_set=prompt_set, split="eval", prompt_limit=4, judges=["teacher", "oracle"],
                                       teacher_judge="likelihood", max_new_tokens=8), poll=0.5)
    results = api.evaluation(slug, evaluation["id"])["results"]
    for row in (r for r in results if not r["is_teacher"]):
        rate = row["versus_teacher"]["teacher"]
        assert rate["low"] <= rate["rate"] <= rate["high"]

    rows = api.download_snapshot(slug, snapshot["id"], "trl", tmp_path / "pairs.jsonl").read_text().splitlines()
    assert len(rows) == snapshot["pair_count"] and {"prompt", "chosen", "rejected"} <= set(json.loads(rows[0]))
    downloaded, _ = _run_cli(capsys, "snapshots", "download", str(snapshot["id"]), "--format", "hf", "-p", slug)
    assert any(n.endswith("dataset_info.json") for n in zipfile.ZipFile(downloaded["path"]).namelist())
    judgements = api.export_judgements(slug, tmp_path / "judgements.jsonl").read_text().splitlines()
    judged_ids = {row["comparison"] for row in map(json.loads, judgements) if row["source"] == "teacher"}
    assert set(built["ids"]) <= judged_ids  # the judge job's, and the evaluation's own

    assert sent_headers and all("cookie" not in {k.lower() for k in h} for h in sent_headers)
    assert all(h.get("authorization") == f"Bearer {token}" for h in sent_headers)
    assert not api.http.cookies

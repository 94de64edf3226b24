"""Training runs on a teacher/student pair with different tokenizers (issue 20), through the gpu task
on the real database: the tiny demo teacher into a tiny byte-level BPE student. Sequence-level
methods run as they are, KD and DCKD run as ULD (the stage line says so), and ADPA, TAID and
teacher-as-reference DPO fail before any stage with the reason and the alternatives."""
from pathlib import Path

import pytest

from ml.demo.bpe_tokenizer import train_bpe_tokenizer
from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import generate_tasks
from ml.demo.tokenizer import corpus_from_tasks
from tests.workers.test_training_tasks import _create, setup, unconsumed_queue  # noqa: F401  (fixtures)
from webapp.catalog.services import model_version_register
from webapp.lifecycle import JobStatus
from webapp.training.models import Checkpoint
from workers.tasks.gpu.training import train_run

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = {"batch_size": 4, "grad_accum": 1, "max_length": 64, "learning_rate": 1e-3, "warmup_ratio": 0.0,
         "lr_scheduler": "constant", "max_steps": 2}


@pytest.fixture
def bpe_student(setup, tmp_path):
    tokenizer = train_bpe_tokenizer(corpus_from_tasks(generate_tasks(120, seed=0)))
    path = save_model_dir(build_model(llama_config(tokenizer, "tiny-student"), seed=2), tokenizer, tmp_path / "bpe")
    return model_version_register(project=setup["project"], name="bpe-student", role="student", source=str(path))


@pytest.mark.parametrize("method, config, outcome", [
    ("sft", {"target": "chosen"}, "runs"),
    ("sft", {"target": "teacher", "max_new_tokens": 4}, "runs"),  # sequence-level KD: the teacher's text
    ("dpo", {"rpo_alpha": 1.0}, "runs"),
    ("redi", {}, "runs"),
    ("kd", {}, "uld"),
    ("dckd", {}, "uld"),
    ("adpa", {}, "ADPA's advantages"),
    ("taid", {}, "TAID interpolates"),
    ("dpo", {"reference": "teacher"}, "teacher-as-reference DPO is refused"),
])
def test_each_method_on_a_mismatched_pair(setup, bpe_student, method, config, outcome):
    teachers = {"teacher_sft": setup["teacher"]} if method in ("dckd", "adpa") else {"teacher": setup["teacher"]}
    run = _create(setup, method, {**SMALL, **config}, student=bpe_student, **teachers)
    status = train_run(run.id)
    run.refresh_from_db()
    if outcome in ("runs", "uld"):
        assert status == "succeeded", run.error
        assert ("cross-tokenizer mode" in run.log_tail) == (outcome == "uld")
        assert "different tokenizers" in run.log_tail
        card = (Path(Checkpoint.objects.get(run=run, is_final=True).path) / "README.md").read_text()
        assert "- tokenizers: different" in card and ("cross-tokenizer mode" in card) == (outcome == "uld")  # lineage
    else:
        assert status == "failed" and run.status == JobStatus.FAILED
        assert "TokenizerMismatchError" in run.error and outcome in run.error
        assert "ULD" in run.error or "reference='base'" in run.error  # the alternatives are named
        assert "teacher DPO" not in run.log_tail  # refused before any stage was built


@pytest.mark.vllm
@pytest.mark.slow
def test_endpoint_heatmap_for_a_student_of_another_family(vllm_server):
    # the BPE student shares no ids with the served demo teacher: the heatmap takes the server's own
    # tokens of the same answer (it used to come back empty, "not available")
    from types import SimpleNamespace

    from workers.endpoints import teacher_signals

    version = SimpleNamespace(name="demo-teacher", capability={"prompt_logprobs": True}, endpoint_spec=lambda: {
        "base_url": vllm_server.base_url, "model": vllm_server.model, "api_key_env": vllm_server.env_name})
    bpe = train_bpe_tokenizer(corpus_from_tasks(generate_tasks(120, seed=0)))
    (row,) = teacher_signals(version, bpe, ["What is 2 plus 3?"], ["5"])
    assert row["tokens"] and len(row["teacher_logp"]) == len(row["tokens"]) and row["kl"] is None
    assert all(logp <= 0 for logp in row["teacher_logp"])

"""Standard benchmarks inside an evaluation job (workers/benchmarks.py): the shipped lm-eval task runs
in the worker on the tiny demo teacher and student (HFLM over the loaded model); the scores, with
their standard errors, are stored with the results and shown beside the win rates on the evaluation
page and on the leaderboard. A task name that is not one is refused when the evaluation is created."""
import pytest
import torch
from django.core.exceptions import ValidationError

from tests.webapp.conftest import admin_user, client_for, project, researcher  # noqa: F401  (fixtures)
from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
from webapp.evaluation import services
from workers.tasks.gpu.evaluation import run_evaluation

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.django_db


def _create(project, researcher, tiny_demo_dir, **config):
    teacher, student = register_demo_models(project, tiny_demo_dir)
    return services.evaluation_create(
        project=project, name="with benchmarks", teacher=teacher, model_versions=[student],
        prompt_set=import_demo_prompts(project, tiny_demo_dir), judges=["oracle"], created_by=researcher,
        config={"split": "eval", "prompt_limit": 4, "max_new_tokens": 6, **config}), teacher, student


def test_lm_eval_scores_are_stored_and_shown_beside_the_win_rates(project, researcher, tiny_demo_dir, client_for):
    torch.set_num_threads(1)
    evaluation, teacher, student = _create(project, researcher, tiny_demo_dir, benchmarks=["distillery_demo"],
                                           benchmark_limit=5)
    assert run_evaluation(evaluation.id) == "succeeded"
    evaluation.refresh_from_db()
    stored = evaluation.results["benchmarks"]
    assert stored["tasks"] == ["distillery_demo"] and stored["limit"] == 5
    for version in (teacher, student):
        entry = stored["models"][str(version.id)]
        assert entry["error"] == ""
        score = entry["scores"]["distillery_demo"]["exact_match"]
        assert 0.0 <= score["value"] <= 1.0 and score["stderr"] is not None
    assert "versus_teacher" in evaluation.results  # the win rates are still there, beside the scores

    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/evaluations/{evaluation.id}/").content.decode()
    assert 'class="benchmark" data-task="distillery_demo" data-metric="exact_match"' in page and " ± " in page
    assert "{#" not in page
    board = client.get(f"/p/{project.slug}/leaderboard/").content.decode()
    assert 'class="benchmark-column"' in board and 'data-task="distillery_demo"' in board


def test_a_task_name_that_is_not_one_is_refused(project, researcher, tiny_demo_dir):
    with pytest.raises(ValidationError, match="not a task name"):
        _create(project, researcher, tiny_demo_dir, benchmarks=["arc_easy", "../etc/passwd"])

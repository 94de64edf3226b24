"""Human verdicts on an evaluation refit its results through a debounced worker task (issue 10
B25): a burst of verdicts, real commits and the real Redis, gives one refit, scheduled after the
window; a verdict after the window schedules the next. Celery's send_task is where the test
listens (no worker needed to count what was sent)."""
import time

import pytest
import redis

from tests.webapp.annotation.conftest import make_world, pairwise, world  # noqa: F401  (fixtures)
from webapp.annotation.services import comparison_lease, judgement_record, judgement_undo
from webapp.evaluation.models import Evaluation
from webapp.evaluation.services import RESULTS_TASK, pair_comparison_store


@pytest.fixture
def sent(monkeypatch):
    from webapp.celery import app

    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), countdown=None, **kw: calls.append((name, tuple(args), countdown)))
    return calls


def test_a_burst_of_verdicts_gives_one_refit_after_the_window(transactional_db, project, annotator, settings, sent):
    settings.EVALUATION_REFRESH_DELAY_SECONDS = 1
    world = make_world(project, prompts=1)
    evaluation = Evaluation.objects.create(project=project, name="eval", prompt_set=world["prompt_set"], teacher=world["teacher"])
    first, second = world["job"].generations.order_by("id")[:2]
    comparison = pair_comparison_store(project=project, prompt=first.prompt, first=first, second=second, source="evaluation",
                                       evaluation=evaluation)
    redis.Redis.from_url(settings.REDIS_URL).delete(f"distillery:evaluation-refresh:{evaluation.pk}")
    comparison_lease(comparison=comparison, annotator=annotator)
    for _ in range(5):  # ten human verdict changes: five recorded, five undone
        judgement_record(comparison=comparison, annotator=annotator, ranking=[[first.pk], [second.pk]])
        judgement_undo(project=project, annotator=annotator)
    assert sent == [(RESULTS_TASK, (evaluation.pk,), 1)]
    time.sleep(1.1)  # the window closed (the task scheduled above runs now and sees all ten)
    judgement_record(comparison=comparison, annotator=annotator, ranking=[[second.pk], [first.pk]])
    assert sent == [(RESULTS_TASK, (evaluation.pk,), 1)] * 2


def test_other_verdicts_schedule_nothing(transactional_db, project, annotator, pairwise, sent):
    comparison = pairwise[0]
    ids = list(comparison.items.values_list("generation_id", flat=True))
    judgement_record(comparison=comparison, annotator=annotator, ranking=[[ids[0]], [ids[1]]])
    assert sent == []

"""B25 (second half): the side-by-side page word-diffs only the rows it shows, not every row of
the evaluation before paging."""
import pytest

from tests.webapp.evaluation.factories import register_demo_models
from webapp.catalog.models import PromptSet
from webapp.catalog.services import prompts_bulk_create
from webapp.evaluation import selectors, services
from webapp.evaluation.models import Evaluation

pytestmark = pytest.mark.django_db


def test_side_by_side_diffs_the_shown_page_only(client_for, project, researcher, tiny_demo_dir, monkeypatch):
    teacher, student = register_demo_models(project, tiny_demo_dir)
    prompt_set = PromptSet.objects.create(project=project, name="many")
    prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": f"What is {i} + 1?", "split": "eval"} for i in range(50)])
    evaluation = services.evaluation_create(project=project, name="big", teacher=teacher, model_versions=[student],
                                            prompt_set=prompt_set, judges=["oracle"], created_by=researcher,
                                            config={"split": "eval", "prompt_limit": 50})
    Evaluation.objects.filter(pk=evaluation.pk).update(status="succeeded")
    for i, prompt in enumerate(prompt_set.prompts.order_by("id")):
        for mv, text in ((teacher, f"{i + 1}"), (student, f"{i + 1} or so")):
            services.evaluation_output_store(evaluation=evaluation, model_version=mv, prompt=prompt, text=text,
                                             token_count=2, oracle_correct=mv == teacher)
    calls, diff = [], selectors.word_diff
    monkeypatch.setattr(selectors, "word_diff", lambda *a: calls.append(a) or diff(*a))
    response = client_for(researcher).get(f"/p/{project.slug}/evaluations/{evaluation.id}/side-by-side/?page=2")
    html = response.content.decode()
    assert response.status_code == 200
    assert len(calls) == 20  # one candidate per row, twenty rows a page: not all fifty
    assert '<span class="chg"> or so</span>' in html  # and the shown rows do carry their diff

"""Database constraints that protect data: a judgement is never lost by deleting its annotator."""
import pytest
from django.db import IntegrityError, transaction
from django.db.models.deletion import ProtectedError

from webapp.annotation.models import Comparison, ComparisonItem, Judgement
from webapp.catalog.models import ModelVersion, PromptSet
from webapp.catalog.services import prompts_bulk_create
from webapp.generation.models import Generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def comparison(project):
    prompt_set = PromptSet.objects.create(project=project, name="s")
    prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": "2+2?"}])
    prompt = prompt_set.prompts.get()
    teacher = ModelVersion.objects.create(project=project, name="t", role="teacher", source="/m/t")
    student = ModelVersion.objects.create(project=project, name="s", role="student", source="/m/s")
    comparison = Comparison.objects.create(project=project, prompt=prompt)
    for position, model in enumerate((teacher, student)):
        generation = Generation.objects.create(prompt=prompt, model_version=model, text=f"answer {position}")
        ComparisonItem.objects.create(comparison=comparison, generation=generation, position=position)
    return comparison


def test_deleting_an_annotator_with_judgements_is_refused(comparison, annotator):
    Judgement.objects.create(comparison=comparison, source="human", annotator=annotator, verdict="a")
    with pytest.raises(ProtectedError):
        annotator.delete()
    assert Judgement.objects.filter(comparison=comparison).count() == 1


def test_one_judgement_per_annotator_per_comparison(comparison, annotator):
    Judgement.objects.create(comparison=comparison, source="human", annotator=annotator, verdict="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgement.objects.create(comparison=comparison, source="human", annotator=annotator, verdict="b")


def test_judge_verdict_needs_identity_and_valid_probability(comparison):
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgement.objects.create(comparison=comparison, source="teacher", verdict="a", judge_name="")
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgement.objects.create(comparison=comparison, source="teacher", verdict="a", judge_name="j", probability=1.5)


def test_prompts_deduplicate_within_a_set(project):
    prompt_set = PromptSet.objects.create(project=project, name="dedupe")
    created, duplicates = prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": "hi"}, {"text": " hi "}, {"text": "yo"}])
    assert (created, duplicates) == (2, 1)
    assert prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": "yo"}]) == (0, 1)

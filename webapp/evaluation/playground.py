"""Writes for the playground (workers/playground.py, the Gradio app): a prompt typed there and the
teacher's and student's answers to it, sent to the annotation queue as one open comparison."""
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.annotation.models import ComparisonSource
from webapp.catalog.models import Prompt, PromptSet
from webapp.catalog.services import prompt_content_hash
from webapp.evaluation.services import generation_record, pair_comparison_store

PLAYGROUND_SET = "playground"


@transaction.atomic
def playground_pair_submit(*, project, prompt_text: str, teacher, student, teacher_text: str, student_text: str,
                           token_counts: tuple[int, int] = (0, 0), temperature: float = 0.0):
    """Stores a playground prompt (in the project's "playground" prompt set), the two answers and an
    open comparison, so the pair appears in the annotation queue."""
    prompt_text = prompt_text.strip()
    if not prompt_text:
        raise ValidationError("Write a prompt first.")
    if not teacher_text.strip() or not student_text.strip():
        raise ValidationError("Both models must have answered before the pair can be sent.")
    if teacher.project_id != project.pk or student.project_id != project.pk:
        raise ValidationError("Both models must belong to the project.")
    prompt_set, _ = PromptSet.objects.get_or_create(project=project, name=PLAYGROUND_SET,
                                                    defaults={"description": "Prompts typed in the playground"})
    digest = prompt_content_hash(text=prompt_text)
    prompt, _ = Prompt.objects.get_or_create(prompt_set=prompt_set, content_hash=digest,
                                             defaults={"text": prompt_text, "split": "train", "tags": ["playground"]})
    generations = [generation_record(prompt=prompt, model_version=mv, text=text, token_count=count,
                                     origin="playground", temperature=temperature)
                   for mv, text, count in ((teacher, teacher_text, token_counts[0]), (student, student_text, token_counts[1]))]
    return pair_comparison_store(project=project, prompt=prompt, first=generations[0], second=generations[1],
                                 source=ComparisonSource.PLAYGROUND)

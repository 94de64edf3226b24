"""Rows the evaluation tests share: the tiny demo teacher and student registered as model versions
of a project, and the demo prompts (with family and answer, so the oracle can score them)."""
import json

from webapp.catalog.models import PromptSet
from webapp.catalog.services import model_version_register, prompts_bulk_create


def register_demo_models(project, demo_dir):
    teacher = model_version_register(project=project, name="tiny-teacher", role="teacher", stage="sft",
                                     source=str(demo_dir / "teacher"))
    student = model_version_register(project=project, name="tiny-student", role="student", source=str(demo_dir / "student"))
    return teacher, student


def import_demo_prompts(project, demo_dir, *, name="demo-tasks", splits=("train", "eval"), tasks=None):
    """The demo prompt files (or `tasks`, a list of ml.demo Task, stored under the train split)."""
    prompt_set = PromptSet.objects.create(project=project, name=name)
    rows = []
    if tasks is not None:
        rows = [{"text": t.prompt, "split": "train", "tags": [t.family], "metadata": {"family": t.family, "answer": t.answer}}
                for t in tasks]
    else:
        for split in splits:
            for line in (demo_dir / "prompts" / f"{split}.jsonl").read_text().splitlines():
                record = json.loads(line)
                rows.append({"text": record["prompt"], "split": split, "tags": [record["family"]],
                             "metadata": {"family": record["family"], "answer": record["answer"]}})
    prompts_bulk_create(prompt_set=prompt_set, rows=rows)
    return prompt_set

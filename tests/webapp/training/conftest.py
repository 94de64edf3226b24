"""Training fixtures: the tiny demo teacher/student registered as model versions, and a preference
snapshot built directly through the ORM (chosen = the checked demo answer, rejected = a wrong one),
standing in for the snapshot UI another feature owns."""
import hashlib
import json

import pytest

from webapp.annotation.models import PreferencePair, PreferenceSnapshot
from webapp.catalog.models import PromptSet
from webapp.catalog.services import model_version_register, prompts_bulk_create
from webapp.generation.models import Generation


@pytest.fixture
def demo_models(project, tiny_demo_dir):
    student = model_version_register(project=project, name="tiny-student", role="student",
                                     source=str(tiny_demo_dir / "student"))
    teacher = model_version_register(project=project, name="tiny-teacher", role="teacher", stage="sft",
                                     source=str(tiny_demo_dir / "teacher"))
    return {"student": student, "teacher": teacher}


def make_snapshot(project, model_version, tiny_demo_dir, *, name="snap-1", count=16, offset=0):
    rows = [json.loads(line) for line in (tiny_demo_dir / "prompts" / "train.jsonl").read_text().splitlines()]
    rows = rows[offset: offset + count]
    prompt_set, _ = PromptSet.objects.get_or_create(project=project, name="demo-train")
    prompts_bulk_create(prompt_set=prompt_set, rows=[{"text": r["prompt"], "metadata": r} for r in rows])
    by_text = {p.text: p for p in prompt_set.prompts.all()}
    pairs = []
    for row in rows:
        prompt = by_text[row["prompt"]]
        chosen = Generation.objects.create(prompt=prompt, model_version=model_version, text=row["answer"], origin="import")
        wrong = (row["answer"][::-1] + " 7") if len(row["answer"]) > 1 else "no"
        rejected = Generation.objects.create(prompt=prompt, model_version=model_version, text=wrong, origin="import",
                                             sample_index=1)
        pairs.append((prompt, chosen, rejected))
    digest = hashlib.sha256(json.dumps([(p.text, c.text, r.text) for p, c, r in pairs]).encode()).hexdigest()
    snapshot = PreferenceSnapshot.objects.create(project=project, name=name, content_hash=digest, pair_count=len(pairs))
    PreferencePair.objects.bulk_create([
        PreferencePair(snapshot=snapshot, prompt=p, chosen=c, rejected=r, prompt_text=p.text, chosen_text=c.text,
                       rejected_text=r.text) for p, c, r in pairs])
    return snapshot


@pytest.fixture
def snapshot(project, demo_models, tiny_demo_dir):
    return make_snapshot(project, demo_models["student"], tiny_demo_dir)


# Small but not instant on the tiny models: long enough to watch, cancel and resume.
DPO_CONFIG = {"batch_size": 4, "grad_accum": 2, "max_length": 64, "learning_rate": 1e-3, "warmup_ratio": 0.0,
              "lr_scheduler": "constant", "max_steps": 12, "save_every_steps": 3}



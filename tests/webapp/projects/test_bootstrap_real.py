"""`bootstrap_demo --real` registers the real pretrained pair (laid out by `python -m ml demo real`)
as a second demo project beside the tiny one: its own slug, teacher and student model versions, and
its chat prompts stored as messages (not text); a second run changes nothing. The layout is the real
one (ml.demo.real.write_prompts) with the tiny test models standing in for the 135M pair."""
import shutil

import pytest
from django.core.management import CommandError, call_command

from ml.demo.real import EVAL_PROMPTS, TRAIN_PROMPTS, write_prompts
from webapp.catalog.models import ModelVersion, Prompt
from webapp.projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def real_layout(tmp_path, tiny_demo_dir, settings):
    out = tmp_path / "demo-real"
    for role in ("teacher", "student"):
        shutil.copytree(tiny_demo_dir / role, out / role)
    write_prompts(out)
    settings.MODEL_ROOTS = [tmp_path.resolve()]
    return out


def test_real_demo_is_a_second_project_with_chat_prompts(real_layout, tiny_demo_dir, settings, capsys):
    settings.EMBEDDED_SERVICES = True
    call_command("bootstrap_demo", demo_dir=str(tiny_demo_dir))
    call_command("bootstrap_demo", demo_dir=str(real_layout), real=True)
    real = Project.objects.get(slug="demo-real")
    assert Project.objects.filter(slug="demo").exists() and real.name == "Demo (SmolLM2)"
    versions = {mv.name: mv for mv in ModelVersion.objects.filter(project=real)}
    assert set(versions) == {"smollm2-135m-instruct", "smollm2-135m-cut-6"}
    assert versions["smollm2-135m-instruct"].source == str(real_layout / "teacher")
    prompts = Prompt.objects.filter(prompt_set__project=real)
    assert prompts.count() == len(TRAIN_PROMPTS) + len(EVAL_PROMPTS)
    assert prompts.filter(split="eval").count() == len(EVAL_PROMPTS)
    first = prompts.order_by("id").first()
    assert first.text == "" and first.messages[0]["role"] == "system" and first.messages[1]["content"] == TRAIN_PROMPTS[0]
    call_command("bootstrap_demo", demo_dir=str(real_layout), real=True)
    assert Prompt.objects.filter(prompt_set__project=real).count() == prompts.count()
    assert ModelVersion.objects.filter(project=real).count() == 2


def test_real_without_a_build_says_how_to_build_it(tmp_path):
    with pytest.raises(CommandError, match="python -m ml demo real --out"):
        call_command("bootstrap_demo", demo_dir=str(tmp_path / "nothing"), real=True)

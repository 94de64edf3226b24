"""What a training run hands to ml (issue 10, A.3): a chat prompt arrives as its messages, not as
the JSON text the snapshot stores for display, and a pinned hub revision travels with every model
(the recipe's model arguments and the teacher-DPO stage's cache key)."""
import json
from types import SimpleNamespace

import pytest

from ml.modeling import split_model_ref
from ml.teacher_signals import model_identity
from tests.webapp.training.conftest import DPO_CONFIG
from webapp.annotation.models import PreferencePair, PreferenceSnapshot
from webapp.catalog.models import ModelVersion, PromptSet
from webapp.catalog.services import prompts_bulk_create
from webapp.generation.models import Generation
from webapp.projects.services import project_create
from webapp.training import services
from workers.tasks.gpu import training

pytestmark = pytest.mark.django_db

MESSAGES = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Name a pet."}]


@pytest.fixture
def project(django_user_model):
    user = django_user_model.objects.create_user(username="rhea-researcher", password="pw-123456789")
    return project_create(name="Training Inputs", created_by=user), user


def test_chat_prompts_reach_training_as_messages(project):
    project, user = project
    student = ModelVersion.objects.create(project=project, name="s", role="student", source="/models/s")
    prompt_set = PromptSet.objects.create(project=project, name="chat")
    prompts_bulk_create(prompt_set=prompt_set, rows=[{"messages": MESSAGES}, {"text": "What is 2 plus 2?"}])
    snapshot = PreferenceSnapshot.objects.create(project=project, name="snap", content_hash="x" * 64, pair_count=2)
    for prompt in prompt_set.prompts.order_by("id"):
        chosen = Generation.objects.create(prompt=prompt, model_version=student, text="cat", origin="import")
        rejected = Generation.objects.create(prompt=prompt, model_version=student, text="rock", origin="import",
                                             sample_index=1)
        shown = json.dumps(prompt.messages) if prompt.messages else prompt.text
        PreferencePair.objects.create(snapshot=snapshot, prompt=prompt, chosen=chosen, rejected=rejected,
                                      prompt_text=shown, chosen_text="cat", rejected_text="rock")
    run = services.run_create(project=project, created_by=user, method="dpo", config=DPO_CONFIG, snapshot=snapshot,
                              student=student)
    pairs = training.snapshot_pairs(run)
    assert pairs[0].prompt == MESSAGES  # a list of messages, rendered later by ml.chat
    assert pairs[1].prompt == "What is 2 plus 2?"


def test_a_pinned_revision_reaches_the_recipe_and_the_cache_key(project):
    project, user = project
    pinned = ModelVersion.objects.create(project=project, name="hub", role="student", source="org/tiny", revision="abc123")
    other = ModelVersion.objects.create(project=project, name="hub2", role="student", source="org/tiny", revision="def456")
    assert training._ref(pinned) == "org/tiny@abc123"
    assert split_model_ref(training._ref(pinned)) == ("org/tiny", "abc123")
    assert model_identity(training._ref(pinned)) != model_identity(training._ref(other))
    run = SimpleNamespace(method="sft", student=pinned, teacher=other)  # the fields _models reads
    assert training._models(run, None, None) == {"student": "org/tiny@abc123", "teacher": "org/tiny@def456"}


def test_adpa_runs_hand_the_generation_backend_to_the_recipe(project, settings):
    """ADPA's student responses are written on settings.GENERATION_BACKEND (HF, or vLLM on GPU hosts);
    the other methods generate nothing before training, or do it on the training model (HF)."""
    project, _ = project
    settings.GENERATION_BACKEND = "auto"
    version = ModelVersion.objects.create(project=project, name="local", role="student", source="/models/s")
    for method in ("adpa", "adpa_plus"):
        run = SimpleNamespace(method=method, student=version, teacher=version, teacher_sft=version)
        assert training._models(run, "/stages/dpo", None)["generation_backend"] == "auto"
    run = SimpleNamespace(method="dckd", student=version, teacher=version)
    assert "generation_backend" not in training._models(run, "/stages/dpo", None)

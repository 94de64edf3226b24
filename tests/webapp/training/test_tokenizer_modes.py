"""The launch form across tokenizer families (issue 20): each teacher/student pair is marked same or
different tokenizer with what the chosen method does on it, and a method refused across tokenizers
(ADPA, teacher-as-reference DPO) is refused at submit time with the reason and the alternatives."""
import pytest

from tests.webapp.training.test_views import _post_data
from webapp.catalog.services import model_version_register
from webapp.training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def bpe_student(project, tmp_path):
    from ml.demo.bpe_tokenizer import train_bpe_tokenizer
    from ml.demo.configs import build_model, llama_config, save_model_dir
    from ml.demo.tasks import generate_tasks
    from ml.demo.tokenizer import corpus_from_tasks

    tokenizer = train_bpe_tokenizer(corpus_from_tasks(generate_tasks(120, seed=0)))
    path = save_model_dir(build_model(llama_config(tokenizer, "tiny-student"), seed=2), tokenizer, tmp_path / "bpe")
    return model_version_register(project=project, name="bpe-student", role="student", source=str(path))


def test_form_marks_pairs_and_refuses_what_needs_one_vocabulary(client_for, project, researcher, snapshot,
                                                                demo_models, bpe_student):
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/training/new/?method=kd").content.decode()
    assert 'id="tokenizer-modes" open' in page
    assert "<td>tiny-teacher</td><td>tiny-student</td><td>same tokenizer</td>" in page
    assert "<td>tiny-teacher</td><td>bpe-student</td><td>different tokenizer</td><td>cross-tokenizer mode</td>" in page
    assert "runs as ULD" in page
    sft = client.get(f"/p/{project.slug}/training/new/?method=sft").content.decode()
    assert "<td>different tokenizer</td><td>runs (text only)</td>" in sft

    adpa = _post_data(snapshot, demo_models, weight="1.6", top_k=50, advantage_clip="released", sft_floor="1e-7")
    adpa.update(method="adpa", student=bpe_student.id, teacher_sft=demo_models["teacher"].id)
    refused = client.post(f"/p/{project.slug}/training/new/?method=adpa", adpa)
    body = refused.content.decode()
    assert refused.status_code == 400 and "different tokenizers: adpa is refused" in body and "ULD" in body
    dpo = _post_data(snapshot, demo_models, reference="teacher")
    dpo.update(student=bpe_student.id, teacher=demo_models["teacher"].id)
    refused = client.post(f"/p/{project.slug}/training/new/?method=dpo", dpo)
    assert refused.status_code == 400 and "teacher-as-reference DPO scores one" in refused.content.decode()
    assert not TrainingRun.objects.exists()
    dpo.update({"cfg:reference": "base", "teacher": ""})  # text only: launches
    assert client.post(f"/p/{project.slug}/training/new/?method=dpo", dpo).status_code == 302

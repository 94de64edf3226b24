"""Two rounds of the closed loop on tiny models, with the simulated annotator working the real
annotation queue: the queue hands out the round's comparisons largest teacher-student disagreement
first, and the round-2 student (briefly SFT-trained with ml.recipes on oracle-correct answers)
scores higher on the oracle than the round-1 student on its own fresh prompts."""
import pytest
import torch

from ml.config import SFTConfig
from ml.data import SFTExample
from ml.demo.annotator import SimulatedAnnotator
from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import generate_tasks
from ml.metrics import model_token_kl
from ml.modeling import load_model, load_tokenizer
from ml.recipes.sft import train
from tests.webapp.conftest import admin_user, annotator, project, researcher  # noqa: F401  (fixtures)
from tests.webapp.evaluation.factories import import_demo_prompts
from webapp.annotation.selectors import comparison_next_for
from webapp.annotation.services import judgement_record
from webapp.catalog.services import model_version_register
from webapp.evaluation import selectors
from webapp.evaluation.loop_services import loop_round_start
from webapp.evaluation.models import LoopRound
from workers.tasks.gpu.loop import run_round

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _work_the_queue(project, person, simulated) -> list:
    """The simulated annotator takes what the queue offers until it is empty; returns the priorities seen."""
    seen = []
    while (comparison := comparison_next_for(project=project, annotator=person)) is not None:
        first, second = [item.generation for item in comparison.items.order_by("position").select_related("generation")]
        verdict = simulated.judge(comparison.prompt.text, first.text, second.text)
        ranking = {"a": [[first.id], [second.id]], "b": [[second.id], [first.id]], "tie": [[first.id, second.id]]}[verdict]
        judgement_record(comparison=comparison, annotator=person, ranking=ranking)
        seen.append(comparison.priority)
    return seen


def _sft_on_oracle_answers(source, out, *, steps: int, seed: int):
    """A brief SFT (ml.recipes.sft) on oracle-correct answers of demo tasks the rounds never show."""
    examples = [SFTExample(task.prompt, task.answer) for task in generate_tasks(400, seed=seed)]
    config = SFTConfig(learning_rate=1e-2, batch_size=32, grad_accum=1, max_steps=steps, num_epochs=100, max_length=64)
    return train(config, examples, out, student=str(source), device="cpu").final_dir


def test_two_rounds_queue_by_disagreement_and_student_improves(project, researcher, annotator, tiny_demo_dir, tmp_path,
                                                               client):
    # A teacher that answers (random-init models mostly stop at once, and identical answers make no comparison).
    teacher_dir = _sft_on_oracle_answers(tiny_demo_dir / "teacher", tmp_path / "teacher", steps=200, seed=4)
    teacher = model_version_register(project=project, name="tiny-teacher", role="teacher", stage="sft", source=str(teacher_dir))
    tokenizer = load_tokenizer(str(tiny_demo_dir / "tokenizer"))
    save_model_dir(build_model(llama_config(tokenizer, "student"), seed=3), tokenizer, tmp_path / "student-r1")
    student_r1 = model_version_register(project=project, name="student-r1", role="student", source=str(tmp_path / "student-r1"))
    prompt_set = import_demo_prompts(project, tiny_demo_dir, tasks=generate_tasks(60, seed=11))

    round_1 = loop_round_start(project=project, student=student_r1, teacher=teacher, prompt_set=prompt_set,
                               prompt_count=28, created_by=researcher)
    assert run_round(round_1.id) == "succeeded"
    round_1.refresh_from_db()
    queue = selectors.loop_queue(loop_round=round_1)
    assert len(queue) == round_1.stats["comparisons"] >= 20, round_1.stats
    # The priority is the teacher-student disagreement: mean per-token KL(teacher || student) on the student's answer.
    t, s = load_model(teacher.source, device="cpu"), load_model(student_r1.source, device="cpu")
    top = queue[0]
    student_answer = top.items.get(position=1).generation.text
    assert top.priority == pytest.approx(model_token_kl(t.model, s.model, t.tokenizer, [(top.prompt.text, student_answer)]),
                                         abs=1e-3)
    seen = _work_the_queue(project, annotator, SimulatedAnnotator(error_rate=0.0, seed=0))
    assert len(seen) == len(queue) and seen == sorted(seen, reverse=True)  # largest disagreement first

    # Round 2's student: the round-1 student briefly SFT-trained on oracle-correct answers (other tasks than the rounds').
    student_r2_dir = _sft_on_oracle_answers(student_r1.source, tmp_path / "sft", steps=200, seed=5)
    student_r2 = model_version_register(project=project, name="student-r2", role="student", source=str(student_r2_dir),
                                        parent=student_r1, method="sft")
    assert selectors.latest_student(project=project) == student_r2

    round_2 = loop_round_start(project=project, student=student_r2, teacher=teacher, prompt_set=prompt_set,
                               prompt_count=28, created_by=researcher)
    assert round_2.number == 2
    assert run_round(round_2.id) == "succeeded"
    round_2.refresh_from_db()
    used_1 = set(selectors.loop_queue(loop_round=round_1)[i].prompt_id for i in range(len(queue)))
    used_2 = {c.prompt_id for c in selectors.loop_queue(loop_round=round_2)}
    assert not used_1 & used_2  # fresh prompts each round
    seen_2 = _work_the_queue(project, annotator, SimulatedAnnotator(error_rate=0.0, seed=1))
    assert seen_2 == sorted(seen_2, reverse=True)

    rounds = selectors.loop_rounds(project=project)
    assert [r.number for r in rounds] == [1, 2]
    assert rounds[0].judgements_in == len(seen) and rounds[1].judgements_in == len(seen_2)
    acc_1, acc_2 = rounds[0].stats["student_oracle_accuracy"], rounds[1].stats["student_oracle_accuracy"]
    assert acc_2 > acc_1, (acc_1, acc_2)
    assert rounds[1].gain == pytest.approx(acc_2 - acc_1)
    assert LoopRound.objects.filter(project=project, status="succeeded").count() == 2
    client.force_login(researcher)
    page = client.get(f"/p/{project.slug}/loop/").content.decode()
    assert f"+{acc_2 - acc_1:.3f}" in page and f"{acc_2:.3f}" in page  # the gain, shown per round

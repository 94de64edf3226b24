"""Evaluation pages for each persona, the new-evaluation form, the side-by-side filters (on rows
written through the services, so each filter's answer is known), escaping of model output, sending
to the annotation queue, cancelling, the loop form and the live socket's role check and snapshot."""
import asyncio
import threading

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from tests.webapp.evaluation.factories import import_demo_prompts, register_demo_models
from webapp.annotation.models import Comparison
from webapp.evaluation import services
from webapp.evaluation.models import Evaluation, LoopRound
from webapp.evaluation.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db

PAGES = ["evaluations/", "leaderboard/", "loop/"]


@pytest.fixture
def world(project, tiny_demo_dir):
    teacher, student = register_demo_models(project, tiny_demo_dir)
    return teacher, student, import_demo_prompts(project, tiny_demo_dir)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("persona,status", [("admin_user", 200), ("researcher", 200), ("annotator", 403), ("outsider", 404)])
def test_pages_by_role(request, client_for, project, page, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(f"/p/{project.slug}/{page}").status_code == status


def _evaluation(project, world, researcher, **overrides):
    teacher, student, prompt_set = world
    kwargs = {"project": project, "name": "e1", "teacher": teacher, "model_versions": [student], "prompt_set": prompt_set,
              "judges": ["teacher", "oracle"], "config": {"split": "eval", "prompt_limit": 5}, "created_by": researcher}
    return services.evaluation_create(**{**kwargs, **overrides})


def test_researcher_starts_an_evaluation_from_the_form(client_for, project, researcher, world):
    teacher, student, prompt_set = world
    client = client_for(researcher)
    form = client.get(f"/p/{project.slug}/evaluations/").content.decode()
    assert "tiny-student" in form and "Teacher-judge" in form
    response = client.post(f"/p/{project.slug}/evaluations/", {
        "name": "students vs teacher", "teacher": teacher.id, "model_versions": [student.id], "prompt_set": prompt_set.id,
        "split": "eval", "prompt_limit": 10, "judges": ["teacher", "oracle"], "teacher_judge": "likelihood",
        "max_new_tokens": 8, "required_annotations": 2})
    evaluation = Evaluation.objects.get(project=project)
    assert response.status_code == 302 and response.url == f"/p/{project.slug}/evaluations/{evaluation.id}/"
    assert evaluation.status == "queued" and list(evaluation.model_versions.all()) == [student]
    assert evaluation.config["teacher_judge"] == "likelihood" and evaluation.config["required_annotations"] == 2
    detail = client.get(response.url).content.decode()
    assert "students vs teacher" in detail and "queued" in detail


def test_form_refuses_the_teacher_alone_and_an_implicit_judge_without_stages(client_for, project, researcher, world):
    teacher, student, prompt_set = world
    client = client_for(researcher)
    base = {"name": "x", "teacher": teacher.id, "prompt_set": prompt_set.id, "split": "eval", "prompt_limit": 5,
            "judges": ["teacher"], "max_new_tokens": 8, "required_annotations": 1}
    response = client.post(f"/p/{project.slug}/evaluations/", {**base, "model_versions": [teacher.id], "teacher_judge": "generative"})
    assert "Pick at least one model version" in response.content.decode()
    response = client.post(f"/p/{project.slug}/evaluations/", {**base, "model_versions": [student.id], "teacher_judge": "implicit"})
    assert "needs the teacher after DPO and after SFT" in response.content.decode()
    assert not Evaluation.objects.exists()


def test_other_projects_evaluation_is_not_found(client_for, project, researcher, world, admin_user):
    from webapp.projects.services import project_create

    evaluation = _evaluation(project, world, researcher)
    other = project_create(name="Other", created_by=admin_user)
    client = client_for(admin_user)
    assert client.get(f"/p/{other.slug}/evaluations/{evaluation.id}/").status_code == 404


def _answer(evaluation, mv, prompt, text, correct):
    return services.evaluation_output_store(evaluation=evaluation, model_version=mv, prompt=prompt, text=text,
                                            token_count=len(text.split()), oracle_correct=correct)


@pytest.fixture
def judged(project, researcher, world):
    """Three prompts answered by hand: the student loses on the first (teacher-judge and oracle agree),
    wins by the judge but loses by the oracle on the second (a disagreement), ties on the third."""
    teacher, student, _ = world
    evaluation = _evaluation(project, world, researcher)
    Evaluation.objects.filter(pk=evaluation.pk).update(status="succeeded")
    evaluation.refresh_from_db()
    prompts = list(evaluation.prompt_set.prompts.filter(split="eval").order_by("id")[:3])
    plan = [("<script>alert(1)</script> 7", "7", "b", "b"), ("cat dog", "dog cat", "a", "b"), ("5", "5", "tie", "tie")]
    for prompt, (mine, theirs, by_teacher, by_oracle) in zip(prompts, plan):
        a = _answer(evaluation, student, prompt, mine, by_oracle == "a")
        b = _answer(evaluation, teacher, prompt, theirs, by_oracle != "a")
        comparison = services.pair_comparison_store(project=project, prompt=prompt, first=a.generation, second=b.generation,
                                                    source="evaluation", evaluation=evaluation, for_humans=False)
        services.machine_judgement_store(comparison=comparison, source="teacher", judge_name="judge", verdict=by_teacher,
                                         probability={"a": 0.8, "b": 0.2, "tie": 0.5}[by_teacher])
        services.machine_judgement_store(comparison=comparison, source="oracle", judge_name="oracle", verdict=by_oracle)
    return evaluation, prompts


def test_side_by_side_filters_and_escapes(client_for, project, researcher, judged):
    evaluation, prompts = judged
    client = client_for(researcher)
    url = f"/p/{project.slug}/evaluations/{evaluation.id}/side-by-side/"

    def shown(query=""):
        html = client.get(url + query).content.decode()
        return html, [p.text for p in prompts if p.text in html]

    html, every = shown()
    assert len(every) == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert '<span class="chg">&lt;script&gt;alert(1)&lt;/script&gt; </span>' in html  # the diff marks what differs
    assert shown("?losses=1")[1] == [prompts[0].text, prompts[1].text]
    assert shown("?disagreements=1")[1] == [prompts[1].text]
    assert shown("?q=dog")[1] == [prompts[1].text]
    family = prompts[2].metadata["family"]
    expected = [p.text for p in prompts if p.metadata["family"] == family]
    assert shown(f"?family={family}")[1] == expected


def test_send_to_humans_opens_the_comparisons(client_for, project, researcher, judged):
    evaluation, _ = judged
    assert set(Comparison.objects.filter(evaluation=evaluation).values_list("status", flat=True)) == {"complete"}
    response = client_for(researcher).post(f"/p/{project.slug}/evaluations/{evaluation.id}/send-to-humans",
                                           {"required_annotations": 2})
    assert response.status_code == 302
    comparisons = Comparison.objects.filter(evaluation=evaluation)
    assert set(comparisons.values_list("status", flat=True)) == {"open"}
    assert set(comparisons.values_list("required_annotations", flat=True)) == {2}


def test_cancel_a_queued_evaluation(client_for, project, researcher, world):
    evaluation = _evaluation(project, world, researcher)
    client_for(researcher).post(f"/p/{project.slug}/evaluations/{evaluation.id}/cancel")
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled"
    assert services.evaluation_claim(evaluation_id=evaluation.id) is None  # a worker picking it up later does nothing


def test_next_round_form_numbers_rounds_and_refuses_a_second_one_in_flight(client_for, project, researcher, world):
    teacher, student, prompt_set = world
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/loop/").content.decode()
    assert f'<option value="{student.id}" selected>' in page  # the latest student is preselected
    data = {"student": student.id, "teacher": teacher.id, "prompt_set": prompt_set.id, "prompt_count": 10}
    assert client.post(f"/p/{project.slug}/loop/", data).status_code == 302
    response = client.post(f"/p/{project.slug}/loop/", data)
    assert "already in progress" in response.content.decode()
    assert list(LoopRound.objects.filter(project=project).values_list("number", "status")) == [(1, "queued")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona,accepted", [("researcher", True), ("annotator", False), ("outsider", False)])
def test_socket_role_check_and_snapshot(request, project, persona, accepted, world):
    user = request.getfixturevalue(persona)
    evaluation = _evaluation(project, world, request.getfixturevalue("researcher"))

    async def connect():
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/p/{project.slug}/evaluations/")
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        message = await communicator.receive_json_from(timeout=5) if connected else None
        await communicator.disconnect()
        return connected, message

    # On a thread of its own: a session-wide Playwright loop may own this thread's event loop.
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=asyncio.run(connect())))
    thread.start()
    thread.join()
    connected, message = result["value"]
    assert connected is accepted
    if accepted:
        assert message["event"] == "snapshot"
        assert [e["id"] for e in message["evaluations"]] == [evaluation.id]

"""A small annotation world around the shared personas: a teacher and a student model version,
prompts, two samples from each, and helpers that build comparisons from them. Generations are
written directly (no GPU job), since these tests are about what people do with them."""
import pytest

from webapp.annotation.services import comparisons_build
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.generation.models import Generation, GenerationJob
from webapp.projects.models import Role
from webapp.projects.services import member_set_role


def make_world(project, *, prompts: int = 6, texts=None):
    teacher = ModelVersion.objects.create(project=project, name="teacher-7b", role="teacher", source="org/teacher")
    student = ModelVersion.objects.create(project=project, name="student-1b", role="student", source="org/student")
    prompt_set = PromptSet.objects.create(project=project, name="tasks")
    job = GenerationJob.objects.create(project=project, prompt_set=prompt_set, k=2, status="succeeded")
    job.model_versions.set([teacher, student])
    for i in range(prompts):
        prompt = Prompt.objects.create(prompt_set=prompt_set, text=f"What is {i} + {i}?", content_hash=f"h{i}")
        for mv, answer in ((teacher, str(2 * i)), (student, str(2 * i + 1))):
            for s in range(2):
                text = texts(i, mv.role, s) if texts else f"{answer} (sample {s}{', longer answer' * (mv.role == 'student')})"
                Generation.objects.create(job=job, prompt=prompt, model_version=mv, sample_index=s, text=text, token_count=3)
    return {"teacher": teacher, "student": student, "prompt_set": prompt_set, "job": job}


@pytest.fixture
def world(project):
    return make_world(project)


@pytest.fixture
def pairwise(project, world):
    """Teacher-vs-student comparisons, one annotator each."""
    return comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]), mode="teacher_student")


@pytest.fixture
def second_annotator(django_user_model, project):
    from tests.webapp.conftest import PASSWORD

    user = django_user_model.objects.create_user(username="bea-annotator", password=PASSWORD)
    member_set_role(project=project, user=user, role=Role.ANNOTATOR)
    return user


def http_login(base_url: str, user):
    """An httpx client for the real server, logged in as `user` (a session made by Django's test
    client, so no password round trip per client), with CSRF set."""
    import httpx
    from django.test import Client

    django_client = Client()
    django_client.force_login(user)
    client = httpx.Client(base_url=base_url, timeout=30)
    client.cookies.set("sessionid", django_client.cookies["sessionid"].value)
    client.get("/login/")  # sets the csrftoken cookie
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    client.headers["Referer"] = f"{base_url}/"
    return client





def off_loop(fn):
    """Runs fn in a plain thread: Playwright's sync API keeps an event loop in the test's thread,
    where the services' live-event publishing (async_to_sync) cannot run."""
    import threading

    from django.db import connection

    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")

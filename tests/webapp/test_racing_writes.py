"""Writes that race, fired at the real server (daphne, PostgreSQL) by concurrent clients: a double
click, two researchers at once, a retry after a timeout. Each is decided by a database constraint
(INSERT ... ON CONFLICT, or the unique violation caught), so the work is stored once and no request
answers 500 (issue 22, item 2)."""
import threading
from pathlib import Path

import pytest

from tests.webapp.annotation.conftest import http_login, make_world
from webapp.annotation.models import Comparison, ComparisonSource, Judgement
from webapp.evaluation.models import LoopRound
from webapp.projects.models import Membership

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).parent / "annotation" / "samples"


def at_once(n: int, fire) -> list:
    """Runs fire(i) in n threads released together; returns their HTTP status codes."""
    statuses, barrier = [None] * n, threading.Barrier(n)

    def run(i):
        barrier.wait()
        statuses[i] = fire(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_four_uploads_of_one_dataset_store_it_once(transactional_db, asgi_server, project, researcher):
    clients = [http_login(asgi_server, researcher) for _ in range(4)]
    data = (SAMPLES / "trl_standard.jsonl").read_bytes()
    statuses = at_once(4, lambda i: clients[i].post(
        f"/p/{project.slug}/comparisons/import/", data={"format": "auto", "dataset": "shared-file"},
        files={"file": ("prefs.jsonl", data)}).status_code)
    assert statuses.count(302) == 1 and statuses.count(422) == 3, statuses  # the others are told it is there
    rows = len([line for line in data.splitlines() if line.strip()])
    assert Comparison.objects.filter(project=project, source=ComparisonSource.IMPORTED).count() == rows
    assert Judgement.objects.filter(comparison__project=project).count() == rows


def test_three_builds_at_once_make_one_set(transactional_db, asgi_server, project, researcher):
    world = make_world(project, prompts=4)
    clients = [http_login(asgi_server, researcher) for _ in range(3)]
    form = {"job": world["job"].pk, "mode": "teacher_student", "required_annotations": 1, "kway_size": 4, "priority": 0}
    statuses = at_once(3, lambda i: clients[i].post(f"/p/{project.slug}/comparisons/", data=form).status_code)
    assert statuses == [302] * 3
    assert Comparison.objects.filter(project=project).count() == 4 * 2  # 2 teacher-student pairs per prompt
    sets = [frozenset(c.items.values_list("generation_id", flat=True)) for c in Comparison.objects.all()]
    assert len(set(sets)) == len(sets)


def test_two_adds_of_one_new_member_make_one_user(transactional_db, asgi_server, project, admin_user, django_user_model):
    clients = [http_login(asgi_server, admin_user) for _ in range(2)]
    form = {"username": "nia-newcomer", "password": "a-long-enough-passphrase-42", "role": "annotator"}
    statuses = at_once(2, lambda i: clients[i].post(f"/p/{project.slug}/members/", data=form).status_code)
    assert all(s < 500 for s in statuses), statuses
    assert django_user_model.objects.filter(username="nia-newcomer").count() == 1
    assert Membership.objects.filter(project=project, user__username="nia-newcomer", role="annotator").count() == 1


def test_two_round_starts_at_once_run_one_round(transactional_db, asgi_server, project, researcher):
    world = make_world(project, prompts=2)
    clients = [http_login(asgi_server, researcher) for _ in range(4)]  # a double click from two tabs
    form = {"student": world["student"].pk, "teacher": world["teacher"].pk, "prompt_set": world["prompt_set"].pk,
            "prompt_count": 2}
    pages = [None] * 4

    def start(i):
        pages[i] = clients[i].post(f"/p/{project.slug}/loop/", data=form)
        return pages[i].status_code

    statuses = at_once(4, start)
    assert sorted(statuses) == [200, 200, 200, 302], statuses
    assert all("A round is already in progress" in p.text for p in pages if p.status_code == 200)  # the reason, said
    assert LoopRound.objects.filter(project=project, status__in=["queued", "running"]).count() == 1


def test_builds_on_separate_connections_store_each_set_once(transactional_db, project):
    """The build race one level down, where several server processes' requests would meet: six
    threads, six PostgreSQL connections, one job's generations."""
    from django.db import connection

    from webapp.annotation.services import comparisons_build
    from webapp.generation.models import Generation

    world = make_world(project, prompts=3)
    made, errors, barrier = [], [], threading.Barrier(6)

    def build():
        try:
            barrier.wait()
            made.append(len(comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                              mode="teacher_student")))
        except Exception as exc:  # noqa: BLE001 (any error is a failure of the guarantee)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=build) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(made) == 3 * 2 and Comparison.objects.filter(project=project).count() == 3 * 2

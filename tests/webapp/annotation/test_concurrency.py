"""Double submissions racing against the real server (daphne, PostgreSQL): a double click, a retry
after a timeout. None is lost, none duplicated."""
import threading

import pytest

from tests.webapp.annotation.conftest import http_login, make_world
from webapp.annotation.models import Judgement
from webapp.annotation.services import comparisons_build
from webapp.generation.models import Generation


@pytest.mark.slow
def test_concurrent_double_submissions(transactional_db, asgi_server, project, annotator, second_annotator):
    world = make_world(project, prompts=4)
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                    mode="teacher_student", required_annotations=2)
    people = [http_login(asgi_server, u) for u in (annotator, second_annotator)]
    plan = []  # (client, comparison id, ranking) fired 4 times at once each
    for client, comparison in [(c, cmp) for cmp in comparisons for c in people]:
        ids = [i.generation_id for i in comparison.items.order_by("position")]
        plan.append((client, comparison.pk, [[ids[0]], [ids[1]]]))
    statuses, barrier = [], threading.Barrier(4)

    def fire(client, cid, ranking):
        barrier.wait()
        r = client.post(f"/p/{project.slug}/annotate/api/submit", json={"comparison": cid, "ranking": ranking})
        statuses.append(r.status_code)

    for client, cid, ranking in plan:
        threads = [threading.Thread(target=fire, args=(client, cid, ranking)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses.count(201) == len(plan)  # exactly one creation per (annotator, comparison)
    assert statuses.count(200) == 3 * len(plan)  # the repeats are answered with the same judgement
    assert Judgement.objects.count() == len(plan)
    assert {(j.annotator_id, j.comparison_id) for j in Judgement.objects.all()} == \
        {(u.pk, c.pk) for c in comparisons for u in (annotator, second_annotator)}
    assert {c.status for c in type(comparisons[0]).objects.all()} == {"complete"}


@pytest.mark.slow
def test_racing_threads_on_separate_connections(transactional_db, project, annotator):
    """The same race one level down, where requests of several server processes would meet: eight
    threads, eight PostgreSQL connections, one (annotator, comparison)."""
    from django.db import connection

    world = make_world(project, prompts=1)
    comparison = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]), mode="teacher_student")[0]
    ids = [i.generation_id for i in comparison.items.order_by("position")]
    results, errors, barrier = [], [], threading.Barrier(8)

    def fire():
        from webapp.annotation.services import judgement_record
        try:
            barrier.wait()
            judgement, created = judgement_record(comparison=comparison, annotator=annotator, ranking=[[ids[1]], [ids[0]]])
            results.append((judgement.pk, created))
        except Exception as exc:  # noqa: BLE001 (any error is a failure of the guarantee)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({pk for pk, _ in results}) == 1 and sum(created for _, created in results) == 1
    assert Judgement.objects.filter(comparison=comparison).count() == 1

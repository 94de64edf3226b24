"""Double submissions racing against the real server (daphne, PostgreSQL): a double click, a retry
after a timeout. None is lost, none duplicated."""
import threading

import pytest
from django.utils import timezone

from tests.webapp.annotation.conftest import http_login, make_world
from webapp.annotation.models import Judgement
from webapp.annotation.services import comparison_lease, comparisons_build
from webapp.generation.models import Generation


@pytest.mark.slow
def test_concurrent_double_submissions(transactional_db, asgi_server, project, annotator, second_annotator):
    world = make_world(project, prompts=4)
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                    mode="teacher_student", required_annotations=2)
    people = [http_login(asgi_server, u) for u in (annotator, second_annotator)]
    plan = []  # (client, comparison id, ranking) fired 4 times at once each
    for (client, user), comparison in [(p, cmp) for cmp in comparisons for p in zip(people, (annotator, second_annotator))]:
        comparison_lease(comparison=comparison, annotator=user)  # submit accepts only what the queue offered
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


@pytest.mark.slow
def test_twenty_annotators_asking_at_once_never_overfill_a_comparison(transactional_db, asgi_server, project, django_user_model):
    """Issue 10 B6: twenty annotators ask the real server for their next item at the same instant,
    round after round; no comparison is ever on more screens than the annotations it still needs
    (a lease committed while another request's statement ran used to go uncounted)."""
    from collections import Counter

    from webapp.annotation.models import Assignment
    from webapp.projects.services import member_set_role

    world = make_world(project, prompts=6)
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                    mode="teacher_student", required_annotations=2)  # 12 comparisons, 24 slots
    people = []
    for n in range(20):
        user = django_user_model.objects.create_user(username=f"crowd-{n:02d}", password=None)
        member_set_role(project=project, user=user, role="annotator")
        people.append(http_login(asgi_server, user))
    for _ in range(4):
        Assignment.objects.all().delete()
        handed, barrier = [], threading.Barrier(len(people))

        def ask(client):
            barrier.wait()
            item = client.get(f"/p/{project.slug}/annotate/api/next").json()["comparison"]
            handed.append(item and item["id"])

        threads = [threading.Thread(target=ask, args=(c,)) for c in people]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        per_comparison = Counter(h for h in handed if h is not None)
        assert len(handed) == 20 and sum(per_comparison.values()) == 20  # 24 slots: everyone gets one
        assert max(per_comparison.values()) <= 2, per_comparison
        assert Counter(Assignment.objects.values_list("comparison_id", flat=True)) == per_comparison
    assert len(comparisons) == 12


@pytest.mark.slow
def test_lease_race_one_level_down(transactional_db, project, django_user_model):
    """The B6 race where it lives: twenty threads on twenty PostgreSQL connections ask for the next
    item of a queue with one comparison needing one annotation, round after round. Exactly one
    of them may get it each time."""
    from django.db import connection

    from webapp.annotation.models import Assignment
    from webapp.annotation.selectors import comparison_next_for
    from webapp.projects.services import member_set_role

    world = make_world(project, prompts=1)
    comparison = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]),
                                   mode="teacher_student", limit=1)[0]
    crowd = []
    for n in range(20):
        crowd.append(django_user_model.objects.create_user(username=f"racer-{n:02d}", password=None))
        member_set_role(project=project, user=crowd[-1], role="annotator")
    for _ in range(15):
        Assignment.objects.all().delete()
        got, errors, barrier = [], [], threading.Barrier(len(crowd))

        def ask(user):
            try:
                barrier.wait()
                got.append(comparison_next_for(project=project, annotator=user))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=ask, args=(u,)) for u in crowd]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [c.pk for c in got if c is not None] == [comparison.pk]
        assert Assignment.objects.filter(expires_at__gt=timezone.now()).count() == 1

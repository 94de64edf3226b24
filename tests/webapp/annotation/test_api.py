"""The annotation JSON API (what the page and the benchmark use): roles, blindness, the per-
annotator shown order, submit/skip/undo, and clear errors."""
import json

import pytest

from webapp.annotation.models import Judgement

pytestmark = pytest.mark.django_db


def _api(slug, name):
    return f"/p/{slug}/annotate/api/{name}"


def _post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("persona,status", [("annotator", 200), ("researcher", 200), ("outsider", 404)])
def test_next_by_role(request, client_for, project, pairwise, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(_api(project.slug, "next")).status_code == status


def test_anonymous_is_sent_to_login(client, project, pairwise):
    response = client.get(_api(project.slug, "next"))
    assert response.status_code == 302 and "/login/" in response.url


def test_payload_is_blind_and_shuffled_per_annotator(client_for, project, pairwise, annotator, second_annotator, world):
    data = client_for(annotator).get(_api(project.slug, "next")).json()
    text = json.dumps(data)
    assert "teacher-7b" not in text and "student-1b" not in text and "model" not in text
    assert [c["label"] for c in data["comparison"]["candidates"]] == ["A", "B"]
    assert data["progress"] == {"mine": 0, "available": len(pairwise)}
    assert data["counters"]["pending"] == len(pairwise)
    # Over many comparisons, the two annotators see different orders for some of them.
    from webapp.annotation.services import shown_order
    orders = [(shown_order(c.pk, annotator.pk, [1, 2]), shown_order(c.pk, second_annotator.pk, [1, 2])) for c in pairwise]
    assert any(a != b for a, b in orders)


def test_submit_skip_undo_cycle(client_for, project, pairwise, annotator):
    client = client_for(annotator)
    item = client.get(_api(project.slug, "next")).json()["comparison"]
    first, second = [c["id"] for c in item["candidates"]]
    response = _post(client, _api(project.slug, "submit"), {"comparison": item["id"], "ranking": [[second], [first]],
                                                            "rationale": "shorter", "flags": ["unsure", "bogus"], "time_spent_ms": 1234})
    assert response.status_code == 201
    judgement = Judgement.objects.get(annotator=annotator)
    assert judgement.ranking == [sorted([second])] + [[first]] and judgement.flags == ["unsure"] and judgement.time_spent_ms == 1234
    assert judgement.shown_order == [first, second]  # the order this annotator was shown
    nxt = client.get(_api(project.slug, "next")).json()
    assert nxt["comparison"]["id"] != item["id"] and nxt["can_undo"] and nxt["progress"]["mine"] == 1
    skipped = _post(client, _api(project.slug, "skip"), {"comparison": nxt["comparison"]["id"]}).json()
    assert skipped["comparison"]["id"] not in (item["id"], nxt["comparison"]["id"])
    undone = _post(client, _api(project.slug, "undo"), {}).json()
    assert undone["undone"] == item["id"] and undone["comparison"]["id"] == item["id"]
    assert not Judgement.objects.filter(annotator=annotator).exists()
    assert _post(client, _api(project.slug, "undo"), {}).status_code == 409


def test_bad_requests_get_clear_errors(client_for, project, pairwise, annotator):
    client = client_for(annotator)
    assert client.post(_api(project.slug, "submit"), data="not json", content_type="application/json").json()["error"]
    item = client.get(_api(project.slug, "next")).json()["comparison"]
    response = _post(client, _api(project.slug, "submit"), {"comparison": item["id"], "ranking": [[item["candidates"][0]["id"]]]})
    assert response.status_code == 400 and "exactly once" in response.json()["error"]
    assert _post(client, _api(project.slug, "submit"), {"comparison": 10**9, "ranking": []}).status_code == 404
    assert client.get(_api(project.slug, "submit")).status_code == 405
    assert not Judgement.objects.exists()


def test_other_projects_comparisons_are_out_of_reach(client_for, project, pairwise, outsider, admin_user):
    from webapp.projects.services import project_create

    other = project_create(name="Other", created_by=outsider)
    response = _post(client_for(outsider), _api(other.slug, "submit"), {"comparison": pairwise[0].pk, "ranking": []})
    assert response.status_code == 404


def _client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_submit_accepts_only_what_the_queue_offered(client_for, project, pairwise, annotator, world):
    """Issue 10 B5: an id the annotator was not offered (another open item, a machine-only
    evaluation pair) is answered exactly like an id that does not exist, and records nothing."""
    from webapp.evaluation.services import pair_comparison_store

    client = client_for(annotator)
    offered = client.get(_api(project.slug, "next")).json()["comparison"]
    other = next(c for c in pairwise if c.pk != offered["id"])
    gens = list(world["job"].generations.filter(prompt=other.prompt).order_by("id")[:2])
    machine_only = pair_comparison_store(project=project, prompt=other.prompt, first=gens[0], second=gens[1], source="evaluation",
                                         for_humans=False)
    answers = []
    for target in (other, machine_only):
        ids = list(target.items.values_list("generation_id", flat=True))
        answers.append(_post(client, _api(project.slug, "submit"), {"comparison": target.pk, "ranking": [[ids[0]], [ids[1]]]}))
        answers.append(_post(client, _api(project.slug, "skip"), {"comparison": target.pk}))
    answers.append(_post(client, _api(project.slug, "submit"), {"comparison": 10**9, "ranking": [[1], [2]]}))
    assert {(r.status_code, r.content) for r in answers} == {(404, b'{"error": "No such comparison is on offer to you."}')}
    assert not Judgement.objects.exists()
    ids = [c["id"] for c in offered["candidates"]]
    ranking = {"comparison": offered["id"], "ranking": [[ids[0]], [ids[1]]]}
    assert _post(client, _api(project.slug, "submit"), ranking).status_code == 201
    assert _post(client, _api(project.slug, "submit"), ranking).status_code == 200  # a repeat is still answered


BAD_BODIES = ['{"comparison": 1e309}', '{"comparison": "12"}', '{"comparison": [1]}', '{"comparison": null}',
              '{"comparison": 100000000000000000000000000000}', '{"comparison": true}', '{"comparison": -3}',
              '{"comparison": 1.5}', '{"comparison": NaN}', "[1, 2]", '"text"', "null", "not json", "\udcff".encode("utf-8", "surrogatepass"),
              b"\xff\xfe\x00", "[" * 100_000 + "]" * 100_000, "{OFFERED, \"ranking\": [[1e309], [2]]}",
              "{OFFERED, \"ranking\": \"12\"}", "{OFFERED, \"ranking\": [[\"a\"], [true]]}", "{OFFERED, \"ranking\": {\"1\": 2}}",
              "{OFFERED, \"ranking\": null}", "{OFFERED, \"ranking\": [[1.0], [2.0]]}"]


@pytest.mark.parametrize("endpoint", ["submit", "skip"])
def test_bad_types_are_a_400_never_a_500(client_for, project, pairwise, annotator, endpoint):
    """Issue 10 B13: every malformed body on the JSON endpoints is a clear 400 and changes nothing."""
    client = client_for(annotator)
    offered = client.get(_api(project.slug, "next")).json()["comparison"]
    for body in BAD_BODIES:
        if isinstance(body, str):
            if endpoint == "skip" and "OFFERED" in body:
                continue  # skip reads no ranking: these bodies are valid skips
            body = body.replace("OFFERED", f'"comparison": {offered["id"]}').encode("utf-8", "surrogatepass")
        response = client.post(_api(project.slug, endpoint), data=body, content_type="application/json")
        assert response.status_code == 400, (body[:60], response.status_code)
        assert response.json()["error"]
    assert not Judgement.objects.exists()
    from webapp.annotation.models import Skip
    assert not Skip.objects.exists()


def test_progress_agrees_with_an_empty_queue(project, pairwise, annotator, second_annotator):
    """Issue 10 B24: when the rest of the queue is on other people's screens, the page is told 0
    left for you now (and how many are waiting), never "7 left" beside "nothing to judge"."""
    from webapp.annotation.models import Comparison

    Comparison.objects.exclude(pk=pairwise[0].pk).delete()
    first = _client(annotator).get(_api(project.slug, "next")).json()
    assert first["comparison"]["id"] == pairwise[0].pk and first["progress"]["available"] == 1
    blocked = _client(second_annotator).get(_api(project.slug, "next")).json()
    assert blocked["comparison"] is None
    assert blocked["progress"] == {"mine": 0, "available": 0, "waiting": 1}


def test_hot_path_database_statements(client_for, project, pairwise, annotator, monkeypatch):
    """Issue 12: with the session, membership and counters cached, next item asks the database twice
    (the user row, then one statement that leases the item and reads its payload and progress) and
    submit five times (the user row, the locked comparison, the annotator's own judgement and offer,
    one write of judgement + lease + the other verdicts, and here the status it completes)."""
    import time

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webapp.annotation import events

    client = client_for(annotator)
    client.get(_api(project.slug, "next"))  # caches the membership
    monkeypatch.setitem(events._recent, project.pk, (time.monotonic() + 3600, events.counters(project.pk)))  # fresh counters

    def statements(call):
        with CaptureQueriesContext(connection) as queries:
            response = call()
        return response, [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]

    response, nxt = statements(lambda: client.get(_api(project.slug, "next")))
    item = response.json()["comparison"]
    assert len(nxt) == 2 and "auth_user" in nxt[0] and "annotation_next_lease" in nxt[1], nxt
    ranking = [[c["id"]] for c in item["candidates"]]
    response, submit = statements(lambda: _post(client, _api(project.slug, "submit"), {"comparison": item["id"], "ranking": ranking}))
    assert response.status_code == 201
    assert len(submit) == 5 and "auth_user" in submit[0] and "INSERT INTO" in submit[3] and submit[4].startswith("UPDATE"), submit
    judgement = Judgement.objects.get(pk=response.json()["judgement"])
    assert judgement.annotator == annotator and judgement.comparison_id == item["id"] and judgement.created_at is not None

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

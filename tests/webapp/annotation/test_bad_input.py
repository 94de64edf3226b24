"""Bad input on the annotation side answers with the reason, never a 500 (issue 22, item 3): an
adjudication whose ranking nests thousands of levels deep (a RecursionError before), and rationales
past their size limit, from the annotation API and the adjudication form alike; nothing is stored."""
import pytest

from webapp.annotation import services
from webapp.annotation.models import Comparison, Judgement

pytestmark = pytest.mark.django_db
LONG = "why " * 1300  # 5,200 characters


@pytest.mark.parametrize("ranking,why", [("[" * 20_000 + "]" * 20_000, "nested deeper than 2 levels"),
                                          ("[[[[1]]]]", "nested deeper than 2 levels"),
                                          ("[[NaN]]", "NaN is not a JSON number")])
def test_adjudication_with_a_deep_ranking_says_why(client_for, project, pairwise, researcher, ranking, why):
    Comparison.objects.filter(pk=pairwise[0].pk).update(status="disputed")
    client = client_for(researcher)
    response = client.post(f"/p/{project.slug}/quality/adjudicate/{pairwise[0].pk}", {"ranking": ranking})
    assert response.status_code == 400 and why in response.content.decode()  # the quality page, with the reason
    assert Comparison.objects.get(pk=pairwise[0].pk).status == "disputed"


def test_adjudication_rationale_has_a_size_limit(client_for, project, pairwise, researcher):
    Comparison.objects.filter(pk=pairwise[0].pk).update(status="disputed")
    a, b = [i.generation_id for i in pairwise[0].items.order_by("position")]
    response = client_for(researcher).post(f"/p/{project.slug}/quality/adjudicate/{pairwise[0].pk}",
                                           {"ranking": f"[[{a}], [{b}]]", "rationale": LONG})
    assert response.status_code == 400 and "over the 5,000 limit" in response.content.decode()
    assert not Judgement.objects.filter(comparison=pairwise[0]).exists()


def test_api_rationale_has_a_size_limit(client_for, project, pairwise, annotator):
    client = client_for(annotator)
    item = client.get(f"/p/{project.slug}/annotate/api/next").json()["comparison"]
    ids = list(Comparison.objects.get(pk=item["id"]).items.values_list("generation_id", flat=True))
    response = client.post(f"/p/{project.slug}/annotate/api/submit", {"comparison": item["id"], "ranking": [[ids[0]], [ids[1]]],
                                                                      "rationale": LONG}, content_type="application/json")
    assert response.status_code == 400 and "over the 5,000 limit" in response.json()["error"]
    assert not Judgement.objects.exists()
    with pytest.raises(Exception, match="over the 5,000 limit"):
        services.judgement_record(comparison=pairwise[0], annotator=annotator, ranking=[[ids[0]], [ids[1]]], rationale=LONG)


@pytest.mark.parametrize("body,why", [(b'{"comparison": 1, "ranking": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested deeper than 32"),
                                      (b'{"comparison": 1, "ranking": [[1], [2]], "time_spent_ms": NaN}', "NaN is not a JSON number")])
def test_api_bodies_jsonb_cannot_store_say_why(client_for, project, pairwise, annotator, body, why):
    response = client_for(annotator).generic("POST", f"/p/{project.slug}/annotate/api/submit", data=body,
                                             content_type="application/json")
    assert response.status_code == 400 and why in response.json()["error"]

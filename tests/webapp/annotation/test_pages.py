"""The researcher pages: building comparisons, the quality page with its numbers, adjudicating a
dispute from the page, queuing a teacher-judge job; every page escapes model output."""
import pytest

from webapp.annotation import quality, services
from webapp.annotation.models import Comparison, JudgeJob

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["comparisons/", "quality/", "judge/", "snapshots/"])
@pytest.mark.parametrize("persona,status", [("researcher", 200), ("annotator", 403), ("outsider", 404)])
def test_researcher_pages_by_role(request, client_for, project, url, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(f"/p/{project.slug}/{url}").status_code == status


def test_annotate_page_for_annotators(client_for, project, annotator):
    page = client_for(annotator).get(f"/p/{project.slug}/annotate/").content.decode()
    assert 'id="annotate"' in page and "guidelines-source" in page and "vendor/purify.min.js" in page


def test_build_from_the_page(client_for, project, world, researcher):
    response = client_for(researcher).post(f"/p/{project.slug}/comparisons/", {
        "job": world["job"].pk, "mode": "kway", "required_annotations": 3, "kway_size": 4, "priority": 1.5})
    assert response.status_code == 302
    assert Comparison.objects.filter(kind="kway", required_annotations=3, priority=1.5).count() == 6


def test_quality_numbers_and_adjudication(client_for, project, pairwise, annotator, second_annotator, researcher):
    for index, comparison in enumerate(pairwise[:4]):
        Comparison.objects.filter(pk=comparison.pk).update(required_annotations=2)
        a, b = [i.generation_id for i in comparison.items.order_by("position")]
        services.judgement_record(comparison=comparison, annotator=annotator, ranking=[[a], [b]])
        services.judgement_record(comparison=comparison, annotator=second_annotator, ranking=[[a], [b]] if index else [[b], [a]])
    client = client_for(researcher)
    page = client.get(f"/p/{project.slug}/quality/").content.decode()
    assert "being computed in the background" in page and f'id="dispute-{pairwise[0].pk}"' in page  # never in the request
    quality.quality_refresh(project=project)  # the default-queue task's body
    page = client.get(f"/p/{project.slug}/quality/").content.decode()
    assert "ann-annotator · bea-annotator" in page and "Figures computed" in page and "a refresh is on its way" not in page
    # κ for the pair: 3 of 4 agree; a says a,a,a,a; b says b,a,a,a -> p_e = 0.75, κ = (0.75 - 0.75)/(0.25) = 0
    assert '<td class="num">0.000</td>' in page
    a, b = [i.generation_id for i in pairwise[0].items.order_by("position")]
    client.post(f"/p/{project.slug}/quality/adjudicate/{pairwise[0].pk}", {"ranking": f"[[{b}], [{a}]]", "rationale": "b is right"})
    assert Comparison.objects.get(pk=pairwise[0].pk).status == "adjudicated"
    assert f'id="dispute-{pairwise[0].pk}"' not in client.get(f"/p/{project.slug}/quality/").content.decode()


def test_model_output_is_escaped_on_pages(client_for, project, researcher):
    from tests.webapp.annotation.conftest import make_world

    world = make_world(project, prompts=1, texts=lambda i, role, s: f"<script>alert({s})</script><img src=x onerror=alert(1)> {role}")
    comparisons = services.comparisons_build(project=project, generations=world["job"].generations.all(), mode="teacher_student",
                                             required_annotations=1)
    page = client_for(researcher).get(f"/p/{project.slug}/generation/{world['job'].pk}/").content.decode()
    assert "<script>alert(" not in page and "&lt;script&gt;alert(0)" in page and "<img src=x" not in page
    assert comparisons


def test_judge_job_from_the_page(client_for, project, pairwise, world, researcher):
    response = client_for(researcher).post(f"/p/{project.slug}/judge/", {
        "teacher": world["teacher"].pk, "method": "generative", "beta": 0.01, "scope": "unjudged", "limit": 3})
    assert response.status_code == 302
    job = JudgeJob.objects.get()
    assert job.progress_total == 3 and job.judge_name == "teacher:generative:teacher-7b" and job.status == "queued"
    response = client_for(researcher).post(f"/p/{project.slug}/judge/", {
        "teacher": world["teacher"].pk, "method": "implicit_reward", "beta": 0.01, "scope": "all"})
    assert "needs π_sft" in response.content.decode() and JudgeJob.objects.count() == 1


def test_judge_job_with_a_custom_rubric_from_the_page(client_for, project, pairwise, world, researcher):
    """The form sets the generative judge's template, answer labels and answer-mass threshold; a
    template without both responses, or one with a field the judge cannot fill, is refused with the reason."""
    from ml.config import DEFAULT_JUDGE_TEMPLATE

    post = {"teacher": world["teacher"].pk, "method": "generative", "beta": 0.01, "scope": "all", "limit": 2,
            "first_label": "yes", "second_label": "no", "answer_mass_threshold": 0.3}
    for template, reason in [("Better? {first_label} or {second_label}: {first}", "it lacks {second}"),
                             ("{first} {second} {rubric}", "KeyError(&#x27;rubric&#x27;) is not a field it can fill")]:
        page = client_for(researcher).post(f"/p/{project.slug}/judge/", {**post, "template": template}).content.decode()
        assert reason in page and not JudgeJob.objects.exists()
    page = client_for(researcher).post(f"/p/{project.slug}/judge/", {**post, "template": "{first}{second}",
                                                                     "second_label": " yes"}).content.decode()
    assert "two different, non-empty answer labels" in page and not JudgeJob.objects.exists()
    template = "Q: {prompt}\n1) {first}\n2) {second}\nIs 1) better? {first_label}/{second_label}"
    assert client_for(researcher).post(f"/p/{project.slug}/judge/", {**post, "template": template}).status_code == 302
    job = JudgeJob.objects.get()
    assert (job.template, job.first_label, job.second_label, job.answer_mass_threshold) == (template, "yes", "no", 0.3)
    assert job.judge_name.startswith("teacher:generative:teacher-7b|answers=yes/no|template=")
    page = client_for(researcher).get(f"/p/{project.slug}/judge/").content.decode()
    assert "answers yes/no · custom template" in page
    # The default template as a browser sends it back (CRLF line ends) is the default judge.
    JudgeJob.objects.all().delete()
    default = DEFAULT_JUDGE_TEMPLATE.replace("\n", "\r\n")
    client_for(researcher).post(f"/p/{project.slug}/judge/", {**post, "template": default, "first_label": "A",
                                                              "second_label": "B"})
    assert JudgeJob.objects.get().judge_name == "teacher:generative:teacher-7b" and JudgeJob.objects.get().template == ""


def test_disputes_show_verdicts_in_the_columns_terms(client_for, project, pairwise, annotator, second_annotator, researcher):
    """Issue 10 B23: under columns "1. teacher-7b" and "2. student-1b", each verdict names a column
    (not the letter that annotator was shown, not raw generation ids)."""
    comparison = pairwise[0]
    Comparison.objects.filter(pk=comparison.pk).update(required_annotations=2)
    a, b = [i.generation_id for i in comparison.items.order_by("position")]
    services.judgement_record(comparison=comparison, annotator=annotator, ranking=[[a], [b]])
    services.judgement_record(comparison=comparison, annotator=second_annotator, ranking=[[b], [a]])
    page = client_for(researcher).get(f"/p/{project.slug}/quality/").content.decode()
    dispute = page[page.index(f'id="dispute-{comparison.pk}"'):]
    dispute = dispute[:dispute.index("</ul>")]
    assert "1. teacher-7b" in dispute and "2. student-1b" in dispute
    assert 'ann-annotator: <span class="verdict">1 (teacher-7b) is better</span>' in dispute
    assert 'bea-annotator: <span class="verdict">2 (student-1b) is better</span>' in dispute
    assert "A is better" not in dispute and f"[[{a}]" not in dispute and f"[[{b}]" not in dispute

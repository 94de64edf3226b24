"""The annotation page in headless Chromium against the real server: an annotator logs in, judges
five comparisons with the keyboard only, undoes one and judges it again; the database holds exactly
those judgements. Model output carrying <script> and <img onerror> payloads shows as text."""
import pytest

from tests.webapp.annotation.conftest import make_world, off_loop
from tests.webapp.conftest import browser_login
from webapp.annotation.models import Judgement
from webapp.annotation.services import comparisons_build
from webapp.generation.models import Generation

SCRIPT = "<script>window.__xss = 1</script>"
IMG = '<img src=x onerror="window.__xss = 2">'


def _texts(i, role, s):
    if i == 0:
        return f"{SCRIPT} teacher {s}" if role == "teacher" else f"student {s} {IMG}"
    return f"**{i * 2}** is the answer ({role} {s})" + (" and some more words" * 80 if i == 1 and role == "student" else "")


def _candidates(page):
    return page.eval_on_selector_all("#candidates .candidate", "els => els.map(e => Number(e.dataset.id))")


def _current(page):
    return int(page.get_attribute("#annotate", "data-comparison"))


def _wait_for_new_item(page, old_id):
    page.wait_for_function(f"document.querySelector('#annotate').dataset.comparison !== '{old_id}'")


@pytest.mark.browser
@pytest.mark.slow
def test_keyboard_only_annotation_with_undo(transactional_db, asgi_server, page, project, annotator, artifacts_dir):
    off_loop(lambda: comparisons_build(project=project, mode="teacher_student",
                                       generations=Generation.objects.filter(job=make_world(project, prompts=4, texts=_texts)["job"])))
    browser_login(page, asgi_server, annotator.username)
    page.goto(f"{asgi_server}/p/{project.slug}/annotate/")
    page.wait_for_selector("#item:not([hidden]) .candidate")

    # The payloads are shown as text, and nothing ran.
    body = page.inner_text("#candidates")
    assert SCRIPT in body and IMG in body
    assert page.evaluate("window.__xss") is None
    assert page.query_selector_all("#candidates img, #candidates script") == []

    expected = {}
    keys = ["1", "2", "ArrowLeft", "ArrowRight", "1"]
    for key in keys:
        cid, shown = _current(page), _candidates(page)
        page.keyboard.press(key)
        chosen = shown[0] if key in ("1", "ArrowLeft") else shown[1]
        expected[cid] = [[chosen], [x for x in shown if x != chosen]]
        page.keyboard.press("Enter")
        _wait_for_new_item(page, cid)
    page.screenshot(path=str(artifacts_dir / "annotation-page.png"), full_page=True)

    last = cid
    page.keyboard.press("u")
    page.wait_for_function(f"document.querySelector('#annotate').dataset.comparison === '{last}'")
    assert "Undid" in page.inner_text("#status-line")
    assert Judgement.objects.filter(annotator=annotator).count() == 4
    shown = _candidates(page)
    page.keyboard.press("3")  # this time: a tie
    page.keyboard.press("Enter")
    _wait_for_new_item(page, last)
    expected[last] = [sorted(shown)]

    judgements = {j.comparison_id: j for j in Judgement.objects.filter(annotator=annotator)}
    assert set(judgements) == set(expected)
    assert {cid: j.ranking for cid, j in judgements.items()} == expected
    assert judgements[last].verdict == "tie"
    assert Judgement.objects.count() == 5
    assert page.inner_text("#mine") == "5"


@pytest.mark.browser
@pytest.mark.slow
def test_kway_page_hides_the_pairwise_buttons(transactional_db, asgi_server, page, project, annotator):
    """Issue 10 B22: a k-way item shows the ranking help, not the pairwise buttons (a display:flex
    rule used to override their `hidden`); a pairwise item shows the buttons again."""
    world = off_loop(lambda: make_world(project, prompts=2))
    off_loop(lambda: comparisons_build(project=project, mode="kway", priority=1.0, limit=1,
                                       generations=Generation.objects.filter(job=world["job"])))
    off_loop(lambda: comparisons_build(project=project, mode="teacher_student", limit=1,
                                       generations=Generation.objects.filter(job=world["job"])))
    browser_login(page, asgi_server, annotator.username)
    page.goto(f"{asgi_server}/p/{project.slug}/annotate/")
    page.wait_for_selector("#item:not([hidden]) .candidate")
    assert page.get_attribute("#annotate", "data-kind") == "kway"
    assert page.is_visible("#kway-controls")
    assert not any(page.is_visible(f"#{b}") for b in ("pairwise-controls", "btn-a", "btn-b", "btn-tie", "btn-bad"))
    page.click("#skip-btn")
    page.wait_for_function("document.querySelector('#annotate').dataset.kind === 'pairwise'")
    assert page.is_visible("#btn-a") and not page.is_visible("#kway-controls")

"""Each preference format's sample file uploaded through the import page in headless Chromium
against the real server: the page reports the comparisons and judgements it made, and they are in
the database; a broken file shows its line-numbered problems and imports nothing."""
import json

import pytest

from tests.webapp.annotation.test_preference_import import EXPECTED, SAMPLES
from tests.webapp.conftest import browser_login
from webapp.annotation.models import Comparison, Judgement


def _login(page, base, user):
    browser_login(page, base, user.username)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_upload_each_format_in_the_browser(transactional_db, asgi_server, page, project, researcher, artifacts_dir, name):
    _, comparisons, judgements, _ = EXPECTED[name]
    _login(page, asgi_server, researcher)
    page.goto(f"{asgi_server}/p/{project.slug}/comparisons/import/")
    page.set_input_files("input[name=file]", str(SAMPLES / name))
    page.click("#preference-upload button")
    page.wait_for_selector(".messages .msg-success")
    message = page.inner_text(".messages")
    assert f"{comparisons} comparisons with {judgements} judgements" in message
    assert page.inner_text("#imported-count").startswith(f"{comparisons} imported comparison")
    if name == "chatbot_arena.jsonl":
        page.screenshot(path=str(artifacts_dir / "preference-import.png"), full_page=True)
    assert Comparison.objects.filter(project=project, source="imported").count() == comparisons
    assert Judgement.objects.filter(comparison__project=project, source="imported").count() == judgements


@pytest.mark.browser
@pytest.mark.slow
def test_broken_file_shows_line_numbers_and_imports_nothing(transactional_db, asgi_server, page, project, researcher,
                                                            artifacts_dir, tmp_path):
    broken = tmp_path / "broken.jsonl"
    rows = [json.loads(line) for line in (SAMPLES / "chatbot_arena.jsonl").read_text().splitlines()]
    rows[2]["winner"] = "model_c"
    broken.write_text("\n".join(json.dumps(r) for r in rows) + "\n{oops\n")
    _login(page, asgi_server, researcher)
    page.goto(f"{asgi_server}/p/{project.slug}/comparisons/import/")
    page.set_input_files("input[name=file]", str(broken))
    page.click("#preference-upload button")
    page.wait_for_selector("#import-errors")
    page.screenshot(path=str(artifacts_dir / "preference-import-errors.png"), full_page=True)
    errors = page.inner_text("#import-errors")
    assert "nothing was imported" in errors
    assert "line 3: 'winner' must be one of" in errors and "line 5: not valid JSON" in errors
    assert not Comparison.objects.exists() and not Judgement.objects.exists()

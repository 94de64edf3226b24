"""A prompt file over the in-page limit imports on the default-queue worker (a real Celery worker):
the upload redirects at once to a page that follows the import's stage in Chromium and ends on the
prompt set; a broken big file lists its line-numbered problems there and imports nothing."""
import json

import pytest

from tests.webapp.conftest import browser_login
from webapp.catalog.models import Prompt, PromptImport
from webapp.catalog.prompt_imports import BACKGROUND_BYTES


def _big_file(path, *, broken_line=None):
    lines, size, i = [], 0, 0
    while size <= BACKGROUND_BYTES + 1024:
        line = json.dumps({"prompt": f"Task {i}: what is {i} plus {i}? " + "Show the working. " * 4, "tags": ["bulk"],
                           "answer": str(2 * i)})
        lines.append("{not json" if i + 1 == broken_line else line)
        size += len(line) + 1
        i += 1
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def _upload(page, base, project, user, path):
    browser_login(page, base, user.username)
    page.goto(f"{base}/p/{project.slug}/catalog/prompts/upload/")
    page.set_input_files("input[name=file]", str(path))
    page.fill("input[name=prompt_set]", "bulk")
    page.click("form button.primary")
    page.wait_for_selector("#prompt-import")


@pytest.mark.browser
@pytest.mark.slow
def test_big_prompt_file_imports_in_the_background(transactional_db, asgi_server, celery_workers, page, project,
                                                   researcher, artifacts_dir, tmp_path):
    count = _big_file(tmp_path / "bulk.jsonl")
    _upload(page, asgi_server, project, researcher, tmp_path / "bulk.jsonl")
    assert "/catalog/prompts/imports/" in page.url  # the page answered at once, before the import ran
    page.wait_for_function("document.getElementById('import-status').textContent === 'succeeded'", timeout=120_000)
    page.screenshot(path=str(artifacts_dir / "prompt-import-background.png"), full_page=True)
    assert f"Imported {count} prompts" in page.inner_text("#import-result")
    job = PromptImport.objects.get(project=project)
    assert job.created_count == count and Prompt.objects.filter(prompt_set__name="bulk").count() == count
    page.click("#import-result a")
    page.wait_for_url(f"**/catalog/prompts/{job.prompt_set_id}/")


@pytest.mark.browser
@pytest.mark.slow
def test_broken_big_file_lists_its_problems_and_imports_nothing(transactional_db, asgi_server, celery_workers, page,
                                                                project, researcher, tmp_path):
    _big_file(tmp_path / "broken.jsonl", broken_line=1234)
    _upload(page, asgi_server, project, researcher, tmp_path / "broken.jsonl")
    page.wait_for_selector("#import-errors:not([hidden])", timeout=120_000)
    assert "line 1234: not valid JSON" in page.inner_text("#import-error-list")
    assert not Prompt.objects.exists() and PromptImport.objects.get().status == "failed"

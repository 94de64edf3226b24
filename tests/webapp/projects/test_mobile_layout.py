"""At phone width (390 px, Chromium) the researcher's pages fit: the project nav wraps onto its own
row instead of stretching the page (it reached 747 px), and every nav link is on screen."""
import pytest

from tests.webapp.conftest import browser_login

PAGES = ["", "catalog/", "generation/", "comparisons/", "comparisons/import/", "snapshots/", "training/", "evaluations/"]


@pytest.mark.browser
def test_researcher_pages_fit_a_phone(transactional_db, asgi_server, browser, project, researcher, artifacts_dir):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True,
                                  bypass_csp=True)  # Playwright evaluates through eval (see tests/conftest.py)
    page = context.new_page()
    try:
        browser_login(page, asgi_server, researcher.username)
        for path in PAGES:
            page.goto(f"{asgi_server}/p/{project.slug}/{path}")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, f"{path or 'home'} is {width}px wide"
            links = page.eval_on_selector_all(".topnav a", "els => els.map(e => { const r = e.getBoundingClientRect();"
                                                           " return [e.textContent, r.left, r.right]; })")
            assert len(links) >= 8 and all(left >= 0 and right <= 390 for _, left, right in links), links
            if path in ("", "training/"):
                page.screenshot(path=str(artifacts_dir / f"mobile-{path.strip('/') or 'home'}.png"), full_page=True)
    finally:
        context.close()

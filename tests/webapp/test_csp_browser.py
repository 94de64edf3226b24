"""The Content-Security-Policy (issue 22) in Chromium against the real server: the pages whose inline
scripts now carry the nonce, or whose on* handlers became data-confirm / data-autosubmit, run with no
policy violation, their inline scripts do run, a data-confirm form asks before it posts, and a
data-autosubmit control submits its form."""
import pytest

from tests.webapp.annotation.conftest import make_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _login(page, client, base, user):
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base}])


@pytest.fixture
def page(browser):
    """A page that keeps the policy (the shared fixture bypasses it for Playwright's own eval)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()


def test_pages_run_under_the_policy(transactional_db, page, client, asgi_server, project, researcher, admin_user, annotator):
    from webapp.projects.models import Membership

    world = make_world(project, prompts=1)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    _login(page, client, asgi_server, researcher)
    base = f"{asgi_server}/p/{project.slug}"
    for path in ("/", "/training/", "/training/new/?method=dpo", "/generation/", f"/generation/{world['job'].pk}/",
                 "/judge/", "/leaderboard/", "/evaluations/"):
        response = page.goto(base + path)
        assert response.status < 400, path
        page.wait_for_load_state("load")
    assert violations == []
    page.goto(base + "/training/")
    page.keyboard.press("n")  # training/list.html's inline (nonce'd) script binds this key
    page.wait_for_url("**/training/new/?method=dpo")

    _login(page, client, asgi_server, admin_user)
    page.goto(base + "/members/")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.locator(f"form[action$='/members/{annotator.pk}/remove'] button").click()
    page.wait_for_timeout(500)
    assert asked == [f"Remove {annotator.username} from the project?"]
    assert Membership.objects.filter(project=project, user=annotator).exists()  # dismissed: nothing posted
    page.goto(base + "/leaderboard/")
    select = page.locator("#leaderboard-source")
    if select.count():
        values = select.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
        with page.expect_navigation():
            select.select_option(values[-1])
        assert f"source={values[-1]}" in page.url
    assert violations == []

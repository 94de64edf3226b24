"""Every page's live socket comes from one helper, static/projects/socket.js (the browser side of
webapp/projects/live.py's ProjectSocket), and pages say live only once the server's catch-up
snapshot has arrived, not when the socket opens. In Chromium against the real server, the first
sockets of an annotation (or judge, generation, evaluation) page open and are closed by the server
side before any message reaches the page, as a refused or failed snapshot does: the page must not
mark itself live (<body data-live="on">) nor reset its backoff; once a socket delivers its
snapshot, it is live."""
import re
import time
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[3]
HELPER = "static/projects/socket.js"


def test_only_the_one_helper_opens_websockets():
    openers = sorted(str(path.relative_to(REPO)) for path in (REPO / "static").rglob("*.js")
                     if "vendor" not in path.parts and re.search(r"new\s+WebSocket\s*\(", path.read_text()))
    assert openers == [HELPER]


PAGES = {  # name: (persona, path under the project)
    "annotate": ("annotator", "annotate/"),
    "judge": ("researcher", "judge/"),
    "generation": ("researcher", "generation/"),
    "evaluations": ("researcher", "evaluations/"),
}


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", list(PAGES))
def test_a_page_is_live_only_once_its_snapshot_arrived(name, request, page, client, asgi_server, project):
    persona, path = PAGES[name]
    client.force_login(request.getfixturevalue(persona))
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    opened, delivered = [], []

    def handler(ws):
        opened.append(time.monotonic())
        server = ws.connect_to_server()
        if len(opened) <= 3:  # the server accepted; its catch-up never reaches the page, which is closed
            server.on_message(lambda message: ws.close(code=1011, reason="snapshot failed"))
        else:
            def forward(message):
                delivered.append(time.monotonic())
                ws.send(message)
            server.on_message(forward)

    page.route_web_socket(re.compile(r"/ws/p/"), handler)
    page.add_init_script("""window.liveLog = [];
        new MutationObserver(() => { const v = document.body && document.body.dataset.live;
            if (v && v !== window.liveLog[window.liveLog.length - 1]) window.liveLog.push(v); })
        .observe(document, {subtree: true, attributes: true, attributeFilter: ['data-live']});""")
    page.goto(f"{asgi_server}/p/{project.slug}/{path}")
    page.wait_for_function("() => document.body.dataset.live === 'on'", timeout=30_000)
    log = page.evaluate("() => window.liveLog")
    assert log == ["off", "on"], log  # never "on" for the three sockets that opened and closed unheard
    assert len(opened) == 4 and delivered and delivered[0] >= opened[3]
    gaps = [b - a for a, b in zip(opened, opened[1:])]
    # The backoff grows 0.5 → 1 → 2 s (plus connection overhead): an open did not reset it to 0.5 s.
    assert gaps[2] >= 1.8 and gaps[2] > gaps[0] + 0.9, gaps

"""The evaluation socket against the real server: a stored leaderboard reaches an open page (its
time as ISO text: the channel layer's msgpack refuses a datetime, which used to fail the publishing
task and leave the live leaderboard silent)."""
import asyncio
import json
from datetime import datetime

import pytest
import websockets

from tests.webapp.annotation.conftest import http_login
from webapp.evaluation.services import leaderboard_store

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_leaderboard_update_reaches_an_open_page(asgi_server, project, researcher):
    http = http_login(asgi_server, researcher)
    url = asgi_server.replace("http://", "ws://") + f"/ws/p/{project.slug}/evaluations/"

    async def scenario():
        async with websockets.connect(url, origin=asgi_server, additional_headers={
                "Cookie": f"sessionid={http.cookies['sessionid']}"}) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "snapshot"
            stored = await asyncio.to_thread(leaderboard_store, project=project, scores={"student-1b": {"elo": 1012.5}})
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return stored, message

    stored, message = asyncio.run(scenario())
    assert message["event"] == "leaderboard"
    assert datetime.fromisoformat(message["computed_at"]) == stored.computed_at

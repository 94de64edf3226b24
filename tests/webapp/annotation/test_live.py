"""Live counters over Channels against the real server: the socket sends the current counters on
connect (a reconnecting page catches up) and pushes new ones after each judgement; outsiders are
refused."""
import asyncio
import json

import pytest
import websockets

from tests.webapp.annotation.conftest import http_login, make_world
from webapp.annotation.services import comparisons_build
from webapp.generation.models import Generation


async def _connect(server, client):
    url = server.replace("http://", "ws://")
    return await websockets.connect(f"{url}{client.path}", additional_headers={
        "Cookie": f"sessionid={client.cookies['sessionid']}", "Origin": server})


@pytest.mark.slow
def test_counters_pushed_after_each_judgement(transactional_db, asgi_server, project, annotator, outsider):
    comparisons = comparisons_build(project=project, generations=Generation.objects.filter(job=make_world(project, prompts=2)["job"]),
                                    mode="teacher_student")
    http = http_login(asgi_server, annotator)
    http.path = f"/ws/p/{project.slug}/annotation/"

    async def scenario():
        async with await _connect(asgi_server, http) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first == {"event": "annotation.counters", "pending": len(comparisons), "done": 0, "disputed": 0}
            for done in (1, 2):
                item = await asyncio.to_thread(lambda: http.get(f"/p/{project.slug}/annotate/api/next").json()["comparison"])
                ranking = [[c["id"]] for c in item["candidates"]]
                status = await asyncio.to_thread(lambda: http.post(f"/p/{project.slug}/annotate/api/submit",
                                                                    json={"comparison": item["id"], "ranking": ranking}).status_code)
                assert status == 201
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert message["done"] == done and message["pending"] == len(comparisons) - done

    asyncio.run(scenario())


def test_outsider_socket_is_refused(transactional_db, asgi_server, project, outsider):
    http = http_login(asgi_server, outsider)
    http.path = f"/ws/p/{project.slug}/annotation/"

    async def scenario():
        with pytest.raises(websockets.exceptions.WebSocketException):
            async with await _connect(asgi_server, http) as ws:
                await asyncio.wait_for(ws.recv(), 10)

    asyncio.run(scenario())

"""Judge-job progress over the real server goes to researchers only: their judging socket sends the
recent jobs on connect (a page opened late, or reconnecting, catches up) and every progress step,
error text included; an annotator's socket hears none of it and the judging socket refuses them."""
import asyncio
import json

import pytest
import websockets

from tests.webapp.annotation.conftest import http_login, make_world
from webapp import lifecycle
from webapp.annotation import judging
from webapp.annotation.models import JudgeJob
from webapp.lifecycle import JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SECRET_ERROR = "CUDA out of memory loading /srv/models/teacher-70b (traceback …)"


def _connect(server, http, path):
    return websockets.connect(server.replace("http://", "ws://") + path, origin=server, open_timeout=10,
                              additional_headers={"Cookie": f"sessionid={http.cookies['sessionid']}"})


async def _recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def _run_job(job_id):
    """What the gpu task does, through the same service functions: claim, one progress step, fail."""
    job, attempt = judging.judge_job_claim(job_id=job_id, worker="gpu@test")
    assert judging.judge_job_progress(job=job, attempt=attempt, done=1) == lifecycle.GO
    assert judging.judge_job_finish(job=job, attempt=attempt, status=JobStatus.FAILED, error=SECRET_ERROR)


def test_judge_progress_reaches_researchers_only_with_catch_up(asgi_server, project, researcher, annotator):
    world = make_world(project, prompts=2)
    job = JudgeJob.objects.create(project=project, teacher=world["teacher"], comparison_ids=[1, 2], progress_total=2,
                                  judge_name="teacher:generative:teacher-7b")
    researcher_http, annotator_http = http_login(asgi_server, researcher), http_login(asgi_server, annotator)
    judging_path, annotation_path = f"/ws/p/{project.slug}/judging/", f"/ws/p/{project.slug}/annotation/"

    async def scenario():
        with pytest.raises(websockets.InvalidStatus):  # the annotator may not open the researchers' socket
            async with _connect(asgi_server, annotator_http, judging_path) as ws:
                await _recv(ws)
        async with _connect(asgi_server, researcher_http, judging_path) as research, \
                _connect(asgi_server, annotator_http, annotation_path) as annotation:
            snapshot = await _recv(research)
            assert snapshot["event"] == "judge.snapshot"
            assert [(j["job"], j["status"]) for j in snapshot["jobs"]] == [(job.pk, JobStatus.QUEUED)]
            assert (await _recv(annotation))["event"] == "annotation.counters"
            await asyncio.to_thread(_run_job, job.pk)
            heard = [await _recv(research) for _ in range(3)]
            assert [m["status"] for m in heard] == [JobStatus.RUNNING, JobStatus.RUNNING, JobStatus.FAILED]
            assert heard[1]["done"] == 1 and heard[2]["error"] == SECRET_ERROR
            with pytest.raises(asyncio.TimeoutError):  # nothing of it on the annotator's socket
                await _recv(annotation, timeout=2)
        async with _connect(asgi_server, researcher_http, judging_path) as late:  # a page opened afterwards
            caught_up = (await _recv(late))["jobs"][0]
            assert caught_up["status"] == JobStatus.FAILED and caught_up["error"] == SECRET_ERROR

    asyncio.run(scenario())

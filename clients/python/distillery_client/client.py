"""`Distillery`: one method per API operation a pipeline uses, plain dicts in and out. Long
operations answer with the job; `wait(job)` polls its URL until it finishes (calling `progress`
with it after each poll) and raises JobFailed unless it succeeded."""
import os
import time
from pathlib import Path

import httpx

FINISHED = ("succeeded", "failed", "cancelled")


class DistilleryError(Exception):
    """An API error: `status` and the server's `detail` list ({loc, msg, type} each)."""

    def __init__(self, status: int, detail):
        self.status, self.detail = status, detail
        lines = [f"{'.'.join(map(str, d.get('loc', []))) or '-'}: {d.get('msg')}" if isinstance(d, dict) else str(d)
                 for d in (detail if isinstance(detail, list) else [detail])]
        super().__init__(f"HTTP {status}: " + "; ".join(lines))


class JobFailed(Exception):
    def __init__(self, job: dict):
        self.job = job
        super().__init__(f"{job.get('kind', 'job')} {job.get('id')} {job.get('status')}: {job.get('error') or job.get('stage')}")


class Distillery:
    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 120.0, transport=None):
        url = url or os.environ.get("DISTILLERY_URL", "http://127.0.0.1:8000")
        token = token or os.environ.get("DISTILLERY_TOKEN", "")
        if not token:
            raise DistilleryError(401, [{"loc": ["token"], "msg": "No token: pass token= or set DISTILLERY_TOKEN "
                                                                  "(create one at /account/tokens/)."}])
        self.http = httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {token}"})

    # -- plumbing ------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs):
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:500]
            raise DistilleryError(response.status_code, detail)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict | None = None, **kwargs):
        if body is not None:
            kwargs["json"] = {k: v for k, v in body.items() if v is not None}
        return self.request("POST", path, **kwargs)

    def pages(self, path: str, **params):
        """Every item of a paginated list, page after page."""
        page = 1
        while page:
            data = self.get(path, page=page, **params)
            yield from data["items"]
            page = data["next"]

    def download(self, path: str, dest: Path) -> Path:
        with self.http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                raise DistilleryError(response.status_code, response.json().get("detail"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        return dest

    def wait(self, job: dict, *, progress=None, poll: float = 1.0, timeout: float | None = None) -> dict:
        """Polls a job (a launch's answer, or a job dict with `url`) until it finishes."""
        url = job.get("url") or job["job"]["url"]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.request("GET", url.removeprefix("/api/v1"))
            state = state.get("job", state)
            if progress is not None:
                progress(state)
            if state["status"] in FINISHED:
                if state["status"] != "succeeded":
                    raise JobFailed(state)
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{url} still {state['status']} after {timeout} s")
            time.sleep(poll)

    @staticmethod
    def _p(project: str) -> str:
        return f"/projects/{project}"

    # -- projects and members ------------------------------------------------------------------
    def me(self):
        return self.get("/me")

    def projects(self):
        return list(self.pages("/projects"))

    def project(self, project: str):
        return self.get(self._p(project))

    def members(self, project: str):
        return list(self.pages(f"{self._p(project)}/members"))

    def member_add(self, project: str, username: str, role: str, password: str = ""):
        return self.post(f"{self._p(project)}/members", {"username": username, "role": role, "password": password})

    # -- catalog -------------------------------------------------------------------------------
    def import_prompts(self, project: str, path, *, prompt_set: str | None = None, default_split: str = "train",
                       wait: bool = True, progress=None) -> dict:
        """Uploads a prompt file; a big one imports in the background (waited for unless wait=False)."""
        path = Path(path)
        with open(path, "rb") as fh:
            result = self.request("POST", f"{self._p(project)}/prompts/import",
                                  data={"prompt_set": prompt_set or path.stem, "default_split": default_split},
                                  files={"file": (path.name, fh)})
        if "job" in result and wait:
            return self.wait(result, progress=progress)
        return result

    def prompt_sets(self, project: str):
        return list(self.pages(f"{self._p(project)}/prompt-sets"))

    def model_versions(self, project: str, role: str | None = None):
        return list(self.pages(f"{self._p(project)}/model-versions", role=role))

    def register_model(self, project: str, *, name: str, role: str, source: str, stage: str = "base", revision: str = ""):
        return self.post(f"{self._p(project)}/model-versions",
                         {"name": name, "role": role, "source": source, "stage": stage, "revision": revision})

    def register_endpoint(self, project: str, *, name: str, endpoint_url: str, served_model: str, **options):
        return self.post(f"{self._p(project)}/model-versions/endpoints",
                         {"name": name, "endpoint_url": endpoint_url, "served_model": served_model, **options})

    # -- generation, comparisons, judging --------------------------------------------------------
    def generate(self, project: str, *, model_versions: list, prompt_set: int, **params):
        return self.post(f"{self._p(project)}/generation-jobs", {"model_versions": model_versions,
                                                                "prompt_set": prompt_set, **params})

    def build_comparisons(self, project: str, *, job: int, mode: str = "teacher_student", **params):
        return self.post(f"{self._p(project)}/comparisons", {"job": job, "mode": mode, **params})

    def comparisons(self, project: str, **filters):
        return list(self.pages(f"{self._p(project)}/comparisons", **filters))

    def judge(self, project: str, *, teacher: int, method: str = "likelihood", **params):
        return self.post(f"{self._p(project)}/judge-jobs", {"teacher": teacher, "method": method, **params})

    def judgements(self, project: str, source: str | None = None):
        return list(self.pages(f"{self._p(project)}/judgements", source=source))

    def export_judgements(self, project: str, dest, source: str = "") -> Path:
        return self.download(f"{self._p(project)}/judgements/export" + (f"?source={source}" if source else ""), Path(dest))

    # -- snapshots -----------------------------------------------------------------------------
    def freeze(self, project: str, name: str, **params):
        return self.post(f"{self._p(project)}/snapshots", {"name": name, **params})

    def snapshots(self, project: str):
        return list(self.pages(f"{self._p(project)}/snapshots"))

    def download_snapshot(self, project: str, snapshot: int, fmt: str = "trl", dest=None) -> Path:
        meta = self.get(f"{self._p(project)}/snapshots/{snapshot}")
        suffix = ".jsonl" if fmt in ("trl", "jsonl") else f"-{fmt}.zip"
        dest = Path(dest) if dest else Path(f"{project}-{meta['name']}-{meta['content_hash'][:12]}{suffix}")
        return self.download(f"{self._p(project)}/snapshots/{snapshot}/download/{fmt}", dest)

    # -- training ------------------------------------------------------------------------------
    def launch_run(self, project: str, *, method: str, snapshot: int, student: int, config: dict | None = None, **inputs):
        return self.post(f"{self._p(project)}/runs", {"method": method, "snapshot": snapshot, "student": student,
                                                     "config": config or {}, **inputs})

    def runs(self, project: str):
        return list(self.pages(f"{self._p(project)}/runs"))

    def run(self, project: str, run: int):
        return self.get(f"{self._p(project)}/runs/{run}")

    def metrics(self, project: str, run: int, after: int = -1):
        return self.get(f"{self._p(project)}/runs/{run}/metrics", after=after)

    def run_action(self, project: str, run: int, action: str):
        """action: cancel, resume or rerun."""
        return self.post(f"{self._p(project)}/runs/{run}/{action}")

    def checkpoints(self, project: str, run: int):
        return list(self.pages(f"{self._p(project)}/runs/{run}/checkpoints"))

    def register_checkpoint(self, project: str, run: int, step: int):
        return self.post(f"{self._p(project)}/runs/{run}/checkpoints/{step}/register")

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, project: str, *, name: str, teacher: int, model_versions: list, prompt_set: int, **params):
        return self.post(f"{self._p(project)}/evaluations", {"name": name, "teacher": teacher,
                                                            "model_versions": model_versions, "prompt_set": prompt_set,
                                                            **params})

    def evaluation(self, project: str, evaluation: int):
        return self.get(f"{self._p(project)}/evaluations/{evaluation}")

    def evaluations(self, project: str):
        return list(self.pages(f"{self._p(project)}/evaluations"))

"""A 20 MB prompt file through the upload page: how long the page takes to answer (it used to parse
and then store the file in the request: ~26 s, the page frozen), and how long the background import
then takes on the worker (validate + store, in-process here, same code as the Celery task).
Embedded PostgreSQL and Redis in a temp dir; the task is not sent (the enqueue is captured).

    python -m benchmarks.bench_prompt_import [--mb 20]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    base = Path(tempfile.mkdtemp(prefix="bench-import-"))
    base.chmod(0o777)  # pgserver runs postgres as its own user
    from webapp.embedded import start_postgres, start_redis, stop_postgres

    db_url, pg = start_postgres(base / "pg", database="postgres")
    redis_url, redis = start_redis(base / "redis", persist=False)
    os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url)
    os.environ["DISTILLERY_DATA_DIR"] = str(base / "data")
    try:
        run(args, base)
    finally:
        redis.terminate()
        stop_postgres(pg)


def run(args, base: Path) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from unittest import mock

    from django.contrib.auth import get_user_model
    from django.test import Client

    from webapp.catalog import prompt_imports
    from webapp.catalog.models import Prompt, PromptImport
    from webapp.projects.services import project_create

    path, lines, size = base / "prompts.jsonl", 0, 0
    with open(path, "w") as fh:
        while size < args.mb * 2 ** 20:
            line = json.dumps({"prompt": f"Task {lines}: what is {lines} plus {lines}? " + "Show every step. " * 6,
                               "tags": ["bench"], "answer": str(2 * lines)}) + "\n"
            fh.write(line)
            size, lines = size + len(line), lines + 1
    user = get_user_model().objects.create_user(username="bench", password="bench-password-1")
    project = project_create(name="Bench import", created_by=user)
    client = Client()
    client.force_login(user)
    with mock.patch("webapp.catalog.prompt_imports.enqueue"), open(path, "rb") as fh:
        started = time.perf_counter()
        response = client.post(f"/p/{project.slug}/catalog/prompts/upload/",
                               {"file": fh, "prompt_set": "bench", "default_split": "train"})
        answered = time.perf_counter() - started
    assert response.status_code == 302, response.status_code
    job = PromptImport.objects.get()
    attempt = prompt_imports.JOBS.claim(job.pk)
    started = time.perf_counter()
    fields = prompt_imports.prompt_import_run(job=job, attempt=attempt)
    worker = time.perf_counter() - started
    prompt_imports.JOBS.finish(job, attempt=attempt, **fields)
    stored = Prompt.objects.count()
    print(json.dumps({"file_mb": round(size / 2 ** 20, 1), "lines": lines, "page_answers_s": round(answered, 2),
                      "background_import_s": round(worker, 1), "prompts_stored": stored}))


if __name__ == "__main__":
    main()

"""Annotation API under load: N concurrent simulated annotators against a real daphne server on a
real PostgreSQL (the embedded one, in a temporary directory) and Redis. Each annotator loops:
GET next-item, think (uniform --think-min..--think-max seconds, people read before they click),
POST submit; every 25th judgement is undone and submitted again. Reports p50/p95/p99/max latency
per endpoint, throughput and errors, then checks the database holds exactly the judgements the
clients were told were created, minus those undone. Goal: p95 <= 50 ms for next and submit, 0 errors.

    python -m benchmarks.bench_annotation [--annotators 50] [--duration 60] [--comparisons 3000]
"""
import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def start_services(base: Path) -> dict:
    from webapp.embedded import start_postgres, start_redis

    db_url, pg = start_postgres(base / "pg", database="bench")
    redis_url, redis = start_redis(base / "redis", persist=False)
    return {"db": db_url, "redis": redis_url, "pg": pg, "redis_proc": redis}


def seed(annotators: int, comparisons: int, overlap: int) -> tuple[str, list[str]]:
    """A project with `comparisons` teacher-vs-student comparisons and logged-in sessions."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from webapp.annotation.services import comparisons_build
    from webapp.catalog.models import ModelVersion, Prompt, PromptSet
    from webapp.generation.models import Generation, GenerationJob
    from webapp.projects.services import member_set_role, project_create

    call_command("migrate", verbosity=0)
    User = get_user_model()
    admin = User.objects.create_user(username="bench-admin", password="x" * 12)
    project = project_create(name="Annotation bench", created_by=admin, guidelines="Prefer correct answers.")
    teacher = ModelVersion.objects.create(project=project, name="teacher", role="teacher", source="org/teacher")
    student = ModelVersion.objects.create(project=project, name="student", role="student", source="org/student")
    prompt_set = PromptSet.objects.create(project=project, name="bench")
    job = GenerationJob.objects.create(project=project, prompt_set=prompt_set, k=1, status="succeeded")
    prompts = Prompt.objects.bulk_create([Prompt(prompt_set=prompt_set, text=f"What is {i} + {i + 1}?", content_hash=f"b{i}")
                                          for i in range(comparisons)])
    Generation.objects.bulk_create([Generation(job=job, prompt=p, model_version=mv, text=f"The answer is {2 * i + 1 + off}. " * 8)
                                    for i, p in enumerate(prompts) for mv, off in ((teacher, 0), (student, 1))])
    comparisons_build(project=project, generations=Generation.objects.filter(job=job), mode="teacher_student",
                      required_annotations=overlap)
    cookies = []
    for n in range(annotators):
        user = User.objects.create_user(username=f"annotator-{n:03d}", password="x" * 12)
        member_set_role(project=project, user=user, role="annotator")
        session = SessionStore()
        session[SESSION_KEY], session[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(session.session_key)
    return project.slug, cookies


def start_server(env: dict, log: Path, *, server: str = "daphne", workers: int = 1) -> tuple[str, subprocess.Popen]:
    from webapp.embedded import free_port

    port = free_port()
    if server == "daphne":
        command = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"]
    else:  # uvicorn runs several server processes on one port (daphne runs one)
        command = ["-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    import httpx

    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return f"http://127.0.0.1:{port}", proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("daphne did not start; see " + str(log))


async def annotator(base, slug, session_key, deadline, args, stats):
    import httpx

    api = f"/p/{slug}/annotate/api/"
    async with httpx.AsyncClient(base_url=base, timeout=30, cookies={"sessionid": session_key}) as client:
        await client.get("/login/")  # the CSRF cookie (and a warm connection); not measured
        client.headers.update({"X-CSRFToken": client.cookies["csrftoken"], "Referer": base + "/"})
        await asyncio.sleep(random.uniform(0, args.think_max))  # people do not all start in the same millisecond
        judged = 0
        while time.monotonic() < deadline:
            item = await timed(stats, "next", client.get(api + "next"))
            if item is None or item.get("comparison") is None:
                await asyncio.sleep(1)
                continue
            await asyncio.sleep(random.uniform(args.think_min, args.think_max))
            c = item["comparison"]["candidates"]
            ranking = [[c[0]["id"]], [c[1]["id"]]] if random.random() < 0.5 else [[c[1]["id"]], [c[0]["id"]]]
            body = {"comparison": item["comparison"]["id"], "ranking": ranking, "time_spent_ms": 1000}
            result = await timed(stats, "submit", client.post(api + "submit", json=body))
            judged += result is not None
            if result is not None and result.get("created"):
                stats["created"] += 1
            if judged % 25 == 0 and result is not None:
                if await timed(stats, "undo", client.post(api + "undo", json={})) is not None:
                    stats["undone"] += 1
                    again = await timed(stats, "submit", client.post(api + "submit", json=body))
                    stats["created"] += bool(again and again.get("created"))


async def timed(stats, name, request):
    started = time.perf_counter()
    try:
        response = await request
        ok = response.status_code < 300
    except Exception as exc:  # counted, not raised: a benchmark reports errors
        response, ok = exc, False
    stats[name].append((time.perf_counter() - started) * 1000)
    if not ok:
        stats["errors"].append(f"{name}: {getattr(response, 'status_code', response)} {getattr(response, 'text', '')[:200]}")
        return None
    return response.json()


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time of the server and its worker processes, to report cost per request
    independent of how busy the rest of the machine is."""
    import psutil

    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def pct(values, q):
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else (values or [0])[0]


async def load(base, slug, cookies, args):
    stats = {"next": [], "submit": [], "undo": [], "errors": [], "created": 0, "undone": 0}
    deadline = time.monotonic() + args.duration
    started = time.monotonic()
    await asyncio.gather(*(annotator(base, slug, c, deadline, args, stats) for c in cookies))
    return stats, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--comparisons", type=int, default=3000)
    parser.add_argument("--overlap", type=int, default=3, help="annotators needed per comparison")
    parser.add_argument("--think-min", type=float, default=0.5)
    parser.add_argument("--think-max", type=float, default=2.0)
    parser.add_argument("--db", choices=("pool", "nopool"), default="pool",
                        help="pool: psycopg's connection pool (the default setting); nopool: DISTILLERY_DB_POOL=0")
    parser.add_argument("--server", choices=("daphne", "uvicorn"), default="daphne")
    parser.add_argument("--workers", type=int, default=1, help="server processes (uvicorn only)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-annotation-"))
    services = start_services(base)
    env = dict(os.environ, DATABASE_URL=services["db"], REDIS_URL=services["redis"], DJANGO_SETTINGS_MODULE="webapp.settings",
               DISTILLERY_DATA_DIR=str(base / "data"), DJANGO_DEBUG="0", DJANGO_SECRET_KEY="bench-" + "k" * 40,
               DISTILLERY_DB_POOL="1" if args.db == "pool" else "0")
    os.environ.update(env)
    import django

    django.setup()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would cost the client CPU
    slug, cookies = seed(args.annotators, args.comparisons, args.overlap)
    url, server = start_server(env, base / "server.log", server=args.server, workers=args.workers)
    try:
        cpu_before = _cpu_seconds(server.pid)
        stats, seconds = asyncio.run(load(url, slug, cookies, args))
        server_cpu = _cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=20)
    from webapp.annotation.models import Judgement

    in_db = Judgement.objects.count()
    print(f"{args.annotators} annotators, {seconds:.0f} s, think {args.think_min}-{args.think_max} s, {args.server} x{args.workers if args.server == 'uvicorn' else 1} + PostgreSQL "
          f"({'connection pool' if args.db == 'pool' else 'no pool'}), {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}")
    print(f"{'endpoint':<8} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name in ("next", "submit", "undo"):
        values = stats[name]
        if values:
            print(f"{name:<8} {len(values):>6} {pct(values, 50):>8.1f} {pct(values, 95):>8.1f} {pct(values, 99):>8.1f} {max(values):>8.1f}")
    total = sum(len(stats[n]) for n in ("next", "submit", "undo"))
    print(f"throughput {total / seconds:.1f} requests/s; errors {len(stats['errors'])}; "
          f"web server CPU {1000 * server_cpu / max(total, 1):.1f} ms per request (contention-free cost)")
    for error in stats["errors"][:10]:
        print("  ", error)
    expected = stats["created"] - stats["undone"]
    print(f"judgements in the database {in_db}, expected {expected}: {'OK' if in_db == expected else 'MISMATCH'}")
    services["redis_proc"].terminate()
    from webapp.embedded import stop_postgres

    stop_postgres(services["pg"])
    ok = not stats["errors"] and in_db == expected and pct(stats["next"], 95) <= 50 and pct(stats["submit"], 95) <= 50
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

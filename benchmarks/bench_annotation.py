"""Annotation API under load: N concurrent simulated annotators against a real ASGI server (daphne,
uvicorn or granian) on a real PostgreSQL (the embedded one, in a temporary directory) and Redis.
Each annotator loops: GET next-item, think (uniform --think-min..--think-max seconds, people read
before they click), POST submit; every 25th judgement is undone and submitted again. Reports
p50/p95/p99/max latency per endpoint, throughput, errors and the server's CPU per request (robust
to a busy machine), then checks the database holds exactly the judgements the clients were told
were created, minus those undone. Goals: server CPU <= 5 ms per request; p95 <= 50 ms (fast
think) / <= 25 ms (human think) at 50 annotators; 0 errors.

    python -m benchmarks.bench_annotation [--annotators 50] [--duration 60] [--server uvicorn --workers 2]
    python -m benchmarks.bench_annotation --profile var/annotation.spy   # py-spy on the server, by part
    python -m benchmarks.bench_annotation --curve [--trees /tmp/old:daphne,.:granian] [--write-doc]

--curve steps the annotators (--steps 10,50,100,200) at both think settings (0.5-2 s, 5-20 s), each
step a fresh database and server, for every source tree in --trees (e.g. a `git worktree` of an
older commit beside this one, so old and new are measured side by side in one run), and prints
(and with --write-doc writes into docs/benchmarks.md) one table.
"""
import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path.cwd() if (Path.cwd() / "webapp").is_dir() else Path(__file__).resolve().parent.parent
THINK = {"fast": (0.5, 2.0), "human": (5.0, 20.0)}
DOC_START, DOC_END = "<!-- annotation-curve:start -->", "<!-- annotation-curve:end -->"


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
    admin = User.objects.create_user(username="bench-admin", password=None)
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
        user = User.objects.create_user(username=f"annotator-{n:03d}", password=None)  # no hashing: sessions are made directly
        member_set_role(project=project, user=user, role="annotator")
        session = SessionStore()
        session[SESSION_KEY], session[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(session.session_key)
    return project.slug, cookies


def server_command(server: str, port: int, workers: int) -> list[str]:
    if server == "daphne":
        return ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"]
    if server == "granian":
        return ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                "--log-level", "warning", "--no-access-log", "webapp.asgi:application"]
    return ["-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning"]


def start_server(env: dict, log: Path, *, server: str = "daphne", workers: int = 1) -> tuple[str, subprocess.Popen]:
    from webapp.embedded import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, *server_command(server, port, workers)], cwd=REPO, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    import httpx

    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return f"http://127.0.0.1:{port}", proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{server} did not start; see {log}")


async def signed_in(base, session_key):
    """A client with its session and CSRF cookies (and a warm connection); not measured."""
    import httpx

    client = httpx.AsyncClient(base_url=base, timeout=30, cookies={"sessionid": session_key})
    await client.get("/login/")
    client.headers.update({"X-CSRFToken": client.cookies["csrftoken"], "Referer": base + "/"})
    return client


async def annotator(client, slug, deadline, args, stats):
    api = f"/p/{slug}/annotate/api/"
    try:
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
    finally:
        await client.aclose()


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


async def load(base, slug, cookies, args, server_pid):
    """Signs every client in, then runs the annotators for --duration; the server's CPU is counted
    over the second part only (the sign-in pages are not the API)."""
    stats = {"next": [], "submit": [], "undo": [], "errors": [], "created": 0, "undone": 0}
    clients = await asyncio.gather(*(signed_in(base, c) for c in cookies))
    cpu_before = _cpu_seconds(server_pid)
    deadline = time.monotonic() + args.duration
    started = time.monotonic()
    await asyncio.gather(*(annotator(c, slug, deadline, args, stats) for c in clients))
    return stats, time.monotonic() - started, _cpu_seconds(server_pid) - cpu_before


# What py-spy's stacks are charged to: the first rule (leaf to root) that a frame matches.
PARTS = [("select-and-lease", ("comparison_next_for", "comparison_next_id_for")),
         ("payload + progress", ("annotator_progress", "annotation_state")),
         ("payload", ("comparison_payload",)), ("counters (Redis/DB)", ("counters_recent", "counters_changed", "publish_now")),
         ("submit write", ("judgement_record", "judgement_submit", "_judgement_write", "_status_refresh", "comparison_offered")), ("undo write", ("judgement_undo",)),
         ("membership", ("permissions.py",)), ("session", ("sessions/",)), ("auth (user)", ("contrib/auth",)),
         ("JSON", ("json", "JsonResponse", "orjson")), ("middleware", ("middleware",)),
         ("Django request handling", ("django/core/handlers", "django/urls", "django/http")),
         ("asgiref thread hops", ("asgiref",)), ("ASGI server", ("daphne", "twisted", "uvicorn", "granian", "asyncio", "httptools", "h11"))]


def profile_parts(path: Path) -> dict[str, float]:
    """Shares of py-spy's samples (collapsed stacks 'frame;frame;... count') by part of the request."""
    totals, all_samples = {}, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        all_samples += n
        part = next((name for frame in reversed(frames) for name, keys in PARTS if any(k in frame for k in keys)), "other")
        totals[part] = totals.get(part, 0) + n
    return {name: n / max(all_samples, 1) for name, n in sorted(totals.items(), key=lambda kv: -kv[1])}


def measure(args) -> dict:
    """One load run on a fresh database and server; the figures as a dict."""
    base = Path(tempfile.mkdtemp(prefix="bench-annotation-"))
    services = start_services(base)
    env = dict(os.environ, DATABASE_URL=services["db"], REDIS_URL=services["redis"], DJANGO_SETTINGS_MODULE="webapp.settings",
               DISTILLERY_DATA_DIR=str(base / "data"), DJANGO_DEBUG="0", DJANGO_SECRET_KEY="bench-" + "k" * 40,
               DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost", DISTILLERY_DB_POOL="1" if args.db == "pool" else "0")
    os.environ.update(env)
    import django

    django.setup()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would cost the client CPU
    slug, cookies = seed(args.annotators, args.comparisons, args.overlap)
    url, server = start_server(env, base / "server.log", server=args.server, workers=args.workers)
    spy = None
    try:
        if args.profile:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid), "--subprocesses", "--nonblocking", "--rate", "250",
                                    "--format", "raw", "-o", str(args.profile), "--duration", str(int(args.duration))],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stats, seconds, server_cpu = asyncio.run(load(url, slug, cookies, args, server.pid))
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=20)
    from webapp.annotation.models import Judgement

    in_db = Judgement.objects.count()
    services["redis_proc"].terminate()
    from webapp.embedded import stop_postgres

    stop_postgres(services["pg"])
    total = sum(len(stats[n]) for n in ("next", "submit", "undo"))
    expected = stats["created"] - stats["undone"]
    return {"annotators": args.annotators, "think": [args.think_min, args.think_max], "seconds": seconds,
            "server": f"{args.server} x{args.workers if args.server != 'daphne' else 1}", "load_avg": os.getloadavg()[0],
            "latency": {name: {"n": len(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99), "max": max(v)}
                        for name, v in ((n, stats[n]) for n in ("next", "submit", "undo")) if v},
            "throughput": total / seconds, "errors": stats["errors"], "cpu_ms": 1000 * server_cpu / max(total, 1),
            "in_db": in_db, "expected": expected, "db_ok": in_db == expected}


def report(result: dict, profile: Path | None) -> None:
    print(f"{result['annotators']} annotators, {result['seconds']:.0f} s, think {result['think'][0]}-{result['think'][1]} s, "
          f"{result['server']} + PostgreSQL, {os.cpu_count()} CPUs, load avg {result['load_avg']:.1f}")
    print(f"{'endpoint':<8} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in result["latency"].items():
        print(f"{name:<8} {row['n']:>6} {row['p50']:>8.1f} {row['p95']:>8.1f} {row['p99']:>8.1f} {row['max']:>8.1f}")
    print(f"throughput {result['throughput']:.1f} requests/s; errors {len(result['errors'])}; "
          f"web server CPU {result['cpu_ms']:.2f} ms per request (contention-free cost)")
    for error in result["errors"][:10]:
        print("  ", error)
    print(f"judgements in the database {result['in_db']}, expected {result['expected']}: {'OK' if result['db_ok'] else 'MISMATCH'}")
    if profile is not None and profile.exists():
        print("server CPU by part (py-spy samples, ms of CPU per request):")
        for part, share in profile_parts(profile).items():
            print(f"  {part:<26} {100 * share:5.1f} %  {share * result['cpu_ms']:6.2f} ms")


def curve(args) -> None:
    """Every (tree, think, annotators) step in its own child process (its own Django, its own
    tree's code), so old and new code run under the same load generator in one run."""
    rows = []
    trees = [(Path(t.partition(":")[0]).resolve(), t.partition(":")[2] or args.server) for t in args.trees.split(",")]
    for think in ("fast", "human"):
        for n in (int(s) for s in args.steps.split(",")):
            for tree, server in trees:
                out = Path(tempfile.mkstemp(suffix=".json")[1])
                lo, hi = THINK[think]
                cmd = [sys.executable, str(Path(__file__).resolve()), "--annotators", str(n), "--duration", str(args.duration),
                       "--comparisons", str(args.comparisons), "--think-min", str(lo), "--think-max", str(hi),
                       "--server", server, "--workers", str(args.workers), "--json-out", str(out)]
                subprocess.run(cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), check=False, stdout=subprocess.DEVNULL)
                result = json.loads(out.read_text() or "{}") if out.stat().st_size else {"failed": True}
                rows.append(((tree, server), think, n, result))
                print(_row((tree, server), trees, think, n, result), flush=True)
    table = _table(rows, trees)
    print(table)
    if args.write_doc:
        doc = REPO / "docs" / "benchmarks.md"
        text = doc.read_text()
        head, _, rest = text.partition(DOC_START)
        _, _, tail = rest.partition(DOC_END)
        doc.write_text(f"{head}{DOC_START}\n{table}\n{DOC_END}{tail}" if rest else text + f"\n{DOC_START}\n{table}\n{DOC_END}\n")


def _label(tree_server, trees):
    tree, server = tree_server
    if len(trees) == 1:
        return f"this tree, {server}"
    commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    return f"{commit}{'+changes' if dirty.strip() else ''}, {server}"


def _row(tree, trees, think, n, r):
    if r.get("failed"):
        return f"| {_label(tree, trees)} | {THINK[think][0]}–{THINK[think][1]} s | {n} | failed | | | | | | |"
    nx, sb = r["latency"].get("next", {}), r["latency"].get("submit", {})
    fmt = lambda row: " / ".join(f"{row.get(q, 0):.0f}" for q in ("p50", "p95", "p99"))  # noqa: E731
    return (f"| {_label(tree, trees)} | {THINK[think][0]}–{THINK[think][1]} s | {n} | {fmt(nx)} | {fmt(sb)} | "
            f"{r['throughput']:.1f} | {len(r['errors'])} | {r['cpu_ms']:.2f} | {'exact' if r['db_ok'] else 'MISMATCH'} | {r['load_avg']:.1f} |")


def _table(rows, trees):
    lines = ["| code | think | annotators | next p50 / p95 / p99 ms | submit p50 / p95 / p99 ms | req/s | errors | "
             "server CPU ms / req | database | load avg |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    return "\n".join(lines + [_row(tree, trees, think, n, r) for tree, think, n, r in rows])


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
    parser.add_argument("--server", choices=("daphne", "uvicorn", "granian"), default="daphne")
    parser.add_argument("--workers", type=int, default=1, help="server processes (uvicorn and granian)")
    parser.add_argument("--profile", type=Path, help="record the server with py-spy into this file and print CPU by part")
    parser.add_argument("--json-out", type=Path, help="write the figures as JSON (used by --curve)")
    parser.add_argument("--curve", action="store_true", help="step the annotators at both think settings")
    parser.add_argument("--steps", default="10,50,100,200")
    parser.add_argument("--trees", default=".", help="comma-separated source trees to measure side by side (--curve), "
                        "each optionally with its server: /tmp/old:daphne,.:granian")
    parser.add_argument("--write-doc", action="store_true", help="write the --curve table into docs/benchmarks.md")
    args = parser.parse_args()
    if args.curve:
        return curve(args)
    result = measure(args)
    if args.json_out:
        args.json_out.write_text(json.dumps(result))
    report(result, args.profile)
    lat = result["latency"]
    ok = not result["errors"] and result["db_ok"] and pct_ok(lat, "next") and pct_ok(lat, "submit")
    sys.exit(0 if ok else 1)


def pct_ok(latency, name, goal=50.0):
    return latency.get(name, {}).get("p95", 0) <= goal


if __name__ == "__main__":
    main()

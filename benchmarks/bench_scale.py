"""Cost as the data grows (issue 23): one project at 10k / 100k / 1M comparisons, each with two human
verdicts and a teacher-judge verdict (the last 5% open, unjudged: the queue), plus a fixed held-out
evaluation (500 prompts) with its leaderboard. Rows go into the real tables by server-side
INSERT ... SELECT over generate_series (no Python per row; triggers on, as a bulk import fires them),
then VACUUM ANALYZE. Then it times what people do:

- the annotation hot path (`next`, then `submit`, as an annotator holding a tenth of all verdicts):
  server CPU (this process: Django's whole request through the test client) plus database CPU (the
  backends serving this database, from /proc/<pid>/schedstat, ns-precise), per request; and the wall
  p95 with four annotators asking at once (threads, each on its own connection);
- the pages a researcher opens (home, quality, snapshots, snapshot, evaluation, side by side,
  leaderboard): median wall of three after a warm-up, with server+database CPU;
- a snapshot freeze of every settled comparison (pairs/s, peak RSS above the start) and its exports
  (TRL JSONL streamed, and every format written: rows/s);
- EXPLAIN (ANALYZE, BUFFERS) of the hot path's statements.

Each (tree, size) runs in a child process on its own fresh embedded PostgreSQL, so an older tree (a
`git worktree` of an earlier commit) is measured beside this one in the same run:

    python -m benchmarks.bench_scale --sizes 10000,100000,1000000 --trees old=/tmp/old,new=. [--write-doc]
    python -m benchmarks.bench_scale --child --size 10000          # one row, JSON on stdout's last line
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC_START, DOC_END = "<!-- scale:start -->", "<!-- scale:end -->"
ANNOTATORS = 20
EVAL_PROMPTS = 500


# ---------------------------------------------------------------- child: build and measure one size

def _sql(sql, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def build(size: int) -> dict:
    """The project: size/2 prompts x 2 teacher + 2 student samples, `size` teacher-vs-student
    comparisons (sample s of each), two human verdicts each (annotators c%20 and (c+1)%20, every
    tenth comparison disputed), one teacher-judge verdict each; the last 5% open and unjudged."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from webapp.catalog.models import ModelVersion, PromptSet
    from webapp.evaluation.models import Evaluation, Leaderboard
    from webapp.generation.models import GenerationJob
    from webapp.projects.services import member_set_role, project_create

    call_command("migrate", verbosity=0)
    User = get_user_model()
    admin = User.objects.create_user(username="researcher", password=None)
    project = project_create(name="Scale bench", created_by=admin, guidelines="Prefer correct answers.")
    teacher = ModelVersion.objects.create(project=project, name="teacher", role="teacher", source="org/teacher")
    student = ModelVersion.objects.create(project=project, name="student", role="student", source="org/student")
    people = []
    for n in range(ANNOTATORS):
        user = User.objects.create_user(username=f"annotator-{n:02d}", password=None)
        member_set_role(project=project, user=user, role="annotator")
        people.append(user.pk)
    prompt_set = PromptSet.objects.create(project=project, name="train")
    eval_set = PromptSet.objects.create(project=project, name="held-out")
    job = GenerationJob.objects.create(project=project, prompt_set=prompt_set, k=2, status="succeeded")
    t0 = time.perf_counter()
    p = {"project": project.pk, "set": prompt_set.pk, "eset": eval_set.pk, "job": job.pk, "t": teacher.pk, "s": student.pk,
         "n": size, "prompts": size // 2, "open_from": int(size * 0.95), "people": people, "k": ANNOTATORS}
    # Ids are given explicitly (identity columns BY DEFAULT), so every table's rows can name each other.
    _sql("""INSERT INTO catalog_prompt (id, prompt_set_id, text, messages, split, tags, metadata, content_hash, created_at)
            SELECT i, %(set)s, 'What is ' || i || ' + ' || (i + 1) || '? Answer with the number only.', NULL, 'train', '{}', '{}',
                   md5('p' || i), now() FROM generate_series(1, %(prompts)s) i""", p)
    # generation id: 4*(prompt-1) + k + 1 with k = 0,1 teacher samples, 2,3 student samples
    _sql("""INSERT INTO generation_generation (id, job_id, prompt_id, model_version_id, sample_index, text, token_count,
                                               token_logps, seed, temperature, top_p, origin, created_at)
            SELECT 4 * (i - 1) + k + 1, %(job)s, i, CASE WHEN k < 2 THEN %(t)s ELSE %(s)s END, k %% 2,
                   'The answer is ' || (2 * i + 1 + (k / 2) * (1 + k %% 2)) || '. ' || repeat('Because adding them gives that. ', 3),
                   12, NULL, 0, 1.0, 1.0, 'generated', now()
              FROM generate_series(1, %(prompts)s) i, generate_series(0, 3) k""", p)
    # comparison c (1..n): prompt (c+1)/2, sample s = (c-1)%2: teacher gen 4(p-1)+s+1 vs student gen 4(p-1)+s+3
    _sql("""INSERT INTO annotation_comparison (id, project_id, prompt_id, kind, source, required_annotations, priority, status,
                                               evaluation_id, loop_round_id, build_key, created_at)
            SELECT c, %(project)s, (c + 1) / 2, 'pairwise', 'teacher_student', 2, (c %% 97) / 97.0,
                   CASE WHEN c > %(open_from)s THEN 'open' WHEN c %% 10 = 0 THEN 'disputed' ELSE 'complete' END,
                   NULL, NULL, (4 * ((c + 1) / 2 - 1) + (c - 1) %% 2 + 1) || ',' || (4 * ((c + 1) / 2 - 1) + (c - 1) %% 2 + 3), now()
              FROM generate_series(1, %(n)s) c""", p)
    _sql("""INSERT INTO annotation_comparisonitem (id, comparison_id, generation_id, position)
            SELECT 2 * c - 1 + pos, c, 4 * ((c + 1) / 2 - 1) + (c - 1) %% 2 + 1 + 2 * pos, pos
              FROM generate_series(1, %(n)s) c, generate_series(0, 1) pos""", p)
    # human verdicts: annotators c%k and (c+1)%k; 'a' by both, or a/b on the disputed tenth
    _sql("""INSERT INTO annotation_judgement (comparison_id, source, annotator_id, judge_model_id, judge_name, verdict, ranking,
                                              shown_order, rationale, flags, time_spent_ms, probability, details, is_adjudication, created_at)
            SELECT c, 'human', (%(people)s::bigint[])[1 + (c + r) %% %(k)s], NULL, '',
                   CASE WHEN c %% 10 = 0 AND r = 1 THEN 'b' ELSE 'a' END,
                   CASE WHEN c %% 10 = 0 AND r = 1 THEN json_build_array(json_build_array(g + 2), json_build_array(g))
                        ELSE json_build_array(json_build_array(g), json_build_array(g + 2)) END,
                   CASE WHEN (c + r) %% 2 = 0 THEN json_build_array(g, g + 2) ELSE json_build_array(g + 2, g) END,
                   '', '[]', 4000, NULL, '{}', false, now() - interval '2 hours'
              FROM generate_series(1, %(open_from)s) c, generate_series(0, 1) r,
                   LATERAL (SELECT 4 * ((c + 1) / 2 - 1) + (c - 1) %% 2 + 1 AS g) x""", p)
    _sql("""INSERT INTO annotation_judgement (comparison_id, source, annotator_id, judge_model_id, judge_name, verdict, ranking,
                                              shown_order, rationale, flags, time_spent_ms, probability, details, is_adjudication, created_at)
            SELECT c, 'teacher', NULL, %(t)s, 'generative:teacher', CASE WHEN c %% 7 = 0 THEN 'b' ELSE 'a' END,
                   '[]', '"both"', '', '[]', NULL, CASE WHEN c %% 7 = 0 THEN 0.3 ELSE 0.8 END, '{}', false, now()
              FROM generate_series(1, %(n)s) c""", p)
    _sequences()
    # the held-out evaluation: EVAL_PROMPTS eval prompts, teacher vs student, a teacher and an oracle verdict each
    base_p, base_g, base_c = size // 2 + 1, 4 * (size // 2) + 1, size + 1
    evaluation = Evaluation.objects.create(project=project, name="held-out", prompt_set=eval_set, teacher=teacher,
                                           judges=["teacher", "oracle"], status="succeeded", config={"split": "eval"})
    evaluation.model_versions.set([student])
    q = dict(p, bp=base_p, bg=base_g, bc=base_c, e=evaluation.pk, m=EVAL_PROMPTS)
    _sql("""INSERT INTO catalog_prompt (id, prompt_set_id, text, messages, split, tags, metadata, content_hash, created_at)
            SELECT %(bp)s + i, %(eset)s, 'Held out: what is ' || i || ' * 3?', NULL, 'eval', '{}',
                   json_build_object('family', CASE WHEN i %% 2 = 0 THEN 'arithmetic' ELSE 'words' END), md5('e' || i), now()
              FROM generate_series(0, %(m)s - 1) i""", q)
    _sql("""INSERT INTO generation_generation (id, job_id, prompt_id, model_version_id, sample_index, text, token_count,
                                               token_logps, seed, temperature, top_p, origin, created_at)
            SELECT %(bg)s + 2 * i + k, NULL, %(bp)s + i, CASE WHEN k = 0 THEN %(t)s ELSE %(s)s END, 0,
                   'It is ' || (3 * i + k) || ', since three times ' || i || ' is that.', 10, NULL, 0, 0.0, 1.0, 'generated', now()
              FROM generate_series(0, %(m)s - 1) i, generate_series(0, 1) k""", q)
    _sql("""INSERT INTO evaluation_evaluationoutput (evaluation_id, model_version_id, prompt_id, generation_id, oracle_correct, signals)
            SELECT %(e)s, CASE WHEN k = 0 THEN %(t)s ELSE %(s)s END, %(bp)s + i, %(bg)s + 2 * i + k, k = 0 OR i %% 3 = 0, '{}'
              FROM generate_series(0, %(m)s - 1) i, generate_series(0, 1) k""", q)
    _sql("""INSERT INTO annotation_comparison (id, project_id, prompt_id, kind, source, required_annotations, priority, status,
                                               evaluation_id, loop_round_id, build_key, created_at)
            SELECT %(bc)s + i, %(project)s, %(bp)s + i, 'pairwise', 'evaluation', 1, 0, 'complete', %(e)s, NULL, '', now()
              FROM generate_series(0, %(m)s - 1) i""", q)
    _sql("""INSERT INTO annotation_comparisonitem (comparison_id, generation_id, position)
            SELECT %(bc)s + i, %(bg)s + 2 * i + 1 - pos, pos FROM generate_series(0, %(m)s - 1) i, generate_series(0, 1) pos""", q)
    _sql("""INSERT INTO annotation_judgement (comparison_id, source, annotator_id, judge_model_id, judge_name, verdict, ranking,
                                              shown_order, rationale, flags, time_spent_ms, probability, details, is_adjudication, created_at)
            SELECT %(bc)s + i, src, NULL, NULL, src || ':judge', CASE WHEN i %% 3 = 0 THEN 'a' ELSE 'b' END, '[]', '"both"', '', '[]',
                   NULL, CASE WHEN src = 'teacher' THEN 0.4 ELSE NULL END, '{}', false, now()
              FROM generate_series(0, %(m)s - 1) i, unnest(ARRAY['teacher', 'oracle']) src""", q)
    _sequences()
    rows = [{"model_version": mv.pk, "name": mv.name, "score": score, "low": score - 0.1, "high": score + 0.1, "games": size}
            for mv, score in ((teacher, 0.4), (student, -0.4))]  # what refresh_leaderboard (a worker task) stores
    Leaderboard.objects.create(project=project, scores={src: {"rows": rows, "pairs": size, "error": ""} for src in ("all", "human", "judge")})
    built = time.perf_counter() - t0
    _sql("VACUUM ANALYZE")
    return {"project": project, "admin": admin, "people": people, "evaluation": evaluation, "build_s": built,
            "vacuum_s": time.perf_counter() - t0 - built}


def _sequences():
    for table in ("catalog_prompt", "generation_generation", "annotation_comparison", "annotation_comparisonitem", "annotation_judgement"):
        _sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


class DbCpu:
    """CPU seconds of the PostgreSQL backends serving this database (ns-precise, /proc/<pid>/schedstat)."""

    def __init__(self, postmaster_pid: int, database: str):
        import psutil

        self.root, self.database = psutil.Process(postmaster_pid), database

    def __call__(self) -> float:
        total = 0
        for child in self.root.children():
            try:
                if f" {self.database} " in " ".join(child.cmdline()) + " ":
                    total += int(Path(f"/proc/{child.pid}/schedstat").read_text().split()[0])
            except (OSError, ValueError):
                continue
        return total / 1e9


def measured(db_cpu, call):
    """(result, wall s, server CPU s, database CPU s) of one call."""
    d0 = db_cpu()
    c0, w0 = time.process_time(), time.perf_counter()
    result = call()
    w1, c1 = time.perf_counter(), time.process_time()
    return result, w1 - w0, c1 - c0, db_cpu() - d0


def hot_path(world, db_cpu, rounds: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    slug = world["project"].slug
    user = get_user_model().objects.get(pk=world["people"][0])
    client = Client()
    client.force_login(user)
    api = f"/p/{slug}/annotate/api/"
    per = {"next": [], "submit": []}
    for i in range(rounds + 5):
        response, wall, cpu, db = measured(db_cpu, lambda: client.get(api + "next"))
        item = response.json()["comparison"]
        if i >= 5:
            per["next"].append((wall, cpu, db))
        if item is None:
            break
        ranking = [[item["candidates"][0]["id"]], [item["candidates"][1]["id"]]]
        response, wall, cpu, db = measured(db_cpu, lambda: client.post(api + "submit", {"comparison": item["id"], "ranking": ranking},
                                                                          content_type="application/json"))
        assert response.status_code == 201, response.content
        if i >= 5:
            per["submit"].append((wall, cpu, db))
    out = {}
    for name, rows in per.items():
        out[name] = {"n": len(rows), "cpu_ms": 1000 * sum(c + d for _, c, d in rows) / len(rows),
                     "server_ms": 1000 * sum(c for _, c, _ in rows) / len(rows), "db_ms": 1000 * sum(d for *_, d in rows) / len(rows),
                     "p50_ms": 1000 * statistics.median(w for w, *_ in rows)}
    return out


def concurrent_p95(world, threads: int = 4, rounds: int = 40) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    slug, walls, errors = world["project"].slug, {"next": [], "submit": []}, []
    barrier = threading.Barrier(threads)

    def annotate(user_id):
        try:
            client = Client()
            client.force_login(get_user_model().objects.get(pk=user_id))
            barrier.wait()
            for _ in range(rounds):
                t0 = time.perf_counter()
                item = client.get(f"/p/{slug}/annotate/api/next").json()["comparison"]
                walls["next"].append(time.perf_counter() - t0)
                if item is None:
                    return
                body = {"comparison": item["id"], "ranking": [[item["candidates"][0]["id"]], [item["candidates"][1]["id"]]]}
                t0 = time.perf_counter()
                client.post(f"/p/{slug}/annotate/api/submit", body, content_type="application/json")
                walls["submit"].append(time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            connection.close()

    pool = [threading.Thread(target=annotate, args=(uid,)) for uid in world["people"][1:1 + threads]]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {name: 1000 * statistics.quantiles(w, n=20)[-1] for name, w in walls.items() if len(w) > 2} | {"errors": errors[:3]}


def pages(world, db_cpu, skip=()) -> dict:
    from django.test import Client

    client = Client()
    client.force_login(world["admin"])
    slug, ev = world["project"].slug, world["evaluation"].pk
    urls = {"home": f"/p/{slug}/", "quality": f"/p/{slug}/quality/", "snapshots": f"/p/{slug}/snapshots/",
            "evaluation": f"/p/{slug}/evaluations/{ev}/", "side_by_side": f"/p/{slug}/evaluations/{ev}/side-by-side/",
            "leaderboard": f"/p/{slug}/leaderboard/"}
    snapshot = world.get("snapshot")
    if snapshot is not None:
        urls["snapshot"] = f"/p/{slug}/snapshots/{snapshot.pk}/"
        from webapp.annotation import selectors
        last = "last" if hasattr(selectors, "pairs_page") else -(-snapshot.pair_count // 25)  # older trees: a page number
        urls["snapshot_last_page"] = f"/p/{slug}/snapshots/{snapshot.pk}/?page={last}"
    out = {}
    for name, url in urls.items():
        if name in skip:
            continue
        runs = []
        for i in range(4):
            response, wall, cpu, db = measured(db_cpu, lambda: client.get(url))
            assert response.status_code == 200, (url, response.status_code)
            if i:
                runs.append((wall, cpu + db))
            if wall > 20:  # a linear page at a large size: one measurement says enough
                runs = [(wall, cpu + db)]
                break
        out[name] = {"ms": 1000 * statistics.median(w for w, _ in runs), "cpu_ms": 1000 * statistics.median(c for _, c in runs)}
    return out


class PeakRss:
    """Peak resident memory above the level at entry, sampled every 10 ms."""

    def __enter__(self):
        import psutil

        self.proc, self.stop = psutil.Process(), threading.Event()
        self.base = self.peak = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.mib = (self.peak - self.base) / 2**20


def freeze_and_export(world, db_cpu, export_all: bool = True) -> dict:
    """The freeze as the job's worker runs it (snapshots.snapshot_freeze, in this process): wall,
    and CPU of this process plus the database backends (the machine is shared: CPU is the steadier
    figure); then the exports."""
    from webapp.annotation import exports, snapshots

    project, out = world["project"], {}
    with PeakRss() as rss:
        snapshot, seconds, cpu, db = measured(db_cpu, lambda: snapshots.snapshot_freeze(project=project, name="bench",
                                                                                          created_by=world["admin"]))
    world["snapshot"] = snapshot
    out["freeze"] = {"pairs": snapshot.pair_count, "s": seconds, "pairs_per_s": snapshot.pair_count / seconds, "peak_mib": rss.mib,
                     "cpu_s": cpu + db, "pairs_per_cpu_s": snapshot.pair_count / (cpu + db)}
    with PeakRss() as rss:
        t0 = time.perf_counter()
        rows = sum(1 for _ in exports.trl_rows(snapshot))
        seconds = time.perf_counter() - t0
    out["export_jsonl"] = {"rows": rows, "s": seconds, "rows_per_s": rows / seconds, "peak_mib": rss.mib}
    if not export_all:
        return out
    with PeakRss() as rss, tempfile.TemporaryDirectory() as tmp:
        os.environ["DISTILLERY_DATA_DIR"] = tmp
        t0 = time.perf_counter()
        exports.snapshot_export(snapshot)
        seconds = time.perf_counter() - t0
    out["export_all"] = {"s": seconds, "rows_per_s": rows / seconds, "peak_mib": rss.mib}
    return out


def explain(world) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the hot path's reads, as the annotator of hot_path."""
    from django.utils import timezone

    from webapp.annotation import selectors, services

    params = {"project": world["project"].pk, "me": world["people"][0], "lease": services.LEASE, "id": None,
              "since": timezone.now() - services.UNDO_WINDOW}  # as annotation_state passes it
    plans = {}
    state_sql = getattr(selectors, "_STATE_SQL_ID")
    cid = _sql("SELECT min(id) FROM annotation_comparison WHERE status = 'open'")[0][0]
    params["id"] = cid
    from django.db import connection
    with connection.cursor() as cursor:
        for name, sql in (("state", state_sql), ("candidate", _CANDIDATE_SQL)):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
            plans[name] = "\n".join(r[0] for r in cursor.fetchall())
    return plans


# The lease function's candidate search (migration 0009), as it runs inside annotation_next_lease.
_CANDIDATE_SQL = """
SELECT c.id FROM annotation_comparison c
 WHERE c.project_id = %(project)s AND c.status = 'open'
   AND NOT EXISTS (SELECT 1 FROM annotation_judgement mj WHERE mj.comparison_id = c.id AND mj.annotator_id = %(me)s)
   AND NOT EXISTS (SELECT 1 FROM annotation_skip ms WHERE ms.comparison_id = c.id AND ms.annotator_id = %(me)s)
   AND (SELECT COUNT(*) FROM annotation_judgement hj WHERE hj.comparison_id = c.id AND hj.source = 'human' AND NOT hj.is_adjudication)
     + (SELECT COUNT(*) FROM annotation_assignment la WHERE la.comparison_id = c.id AND la.expires_at > clock_timestamp()
                                                       AND la.annotator_id <> %(me)s) < c.required_annotations
 ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE OF c SKIP LOCKED"""


def child(args) -> dict:
    from webapp.embedded import start_postgres, start_redis, stop_postgres

    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    db_url, server = start_postgres(base / "pg", database="scale")
    redis_url, redis = start_redis(base / "redis", persist=False)
    os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url, DISTILLERY_DATA_DIR=str(base / "data"),
                      DJANGO_SETTINGS_MODULE="webapp.settings")
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    result = {"size": args.size, "tree": str(Path.cwd())}
    try:
        world = build(args.size)
        result.update(build_s=world["build_s"], vacuum_s=world["vacuum_s"])
        db_cpu = DbCpu(server.get_postmaster_info().pid, "scale")
        parts = set(args.parts.split(","))
        if "hot" in parts:
            result["explain"] = explain(world)
            result["hot"] = hot_path(world, db_cpu, args.rounds)
            result["p95"] = concurrent_p95(world)
        if "freeze" in parts:
            result.update(freeze_and_export(world, db_cpu, export_all=args.size <= args.export_all_max))
        if "pages" in parts:
            result["pages"] = pages(world, db_cpu, skip=set(args.skip_pages.split(",")) if args.skip_pages else ())
    finally:
        stop_postgres(server)
        redis.shutdown() if hasattr(redis, "shutdown") else None
        shutil.rmtree(base, ignore_errors=True)  # a 1M database is gigabytes
    return result


# ---------------------------------------------------------------- parent: run trees x sizes, print

def run_child(tree: Path, size: int, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("DATABASE_URL", None)
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--child", "--size", str(size), "--rounds", str(args.rounds)]
    if args.skip_pages:
        cmd += ["--skip-pages", args.skip_pages]
    cmd += ["--parts", args.parts, "--export-all-max", str(args.export_all_max)]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        return {"size": size, "error": done.stderr[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cells(row: dict) -> dict:
    """One result row as the table's cells (text)."""
    cells, hot, pages_ = {}, row.get("hot", {}), row.get("pages", {})
    for name in ("next", "submit"):
        if name in hot:
            h = hot[name]
            cells[f"`{name}`: server + database CPU per request"] = f"{h['cpu_ms']:.1f} ms ({h['server_ms']:.1f} + {h['db_ms']:.1f})"
    for name in ("next", "submit"):
        if name in row.get("p95", {}):
            cells[f"`{name}` p95, four annotators at once"] = f"{row['p95'][name]:.0f} ms"
    for name, label in (("home", "project home"), ("quality", "quality"), ("snapshots", "snapshots list"),
                        ("snapshot", "snapshot, first page"), ("snapshot_last_page", "snapshot, last page"),
                        ("evaluation", "evaluation"), ("side_by_side", "side by side"), ("leaderboard", "leaderboard")):
        if name in pages_:
            cells[f"page: {label} (wall, CPU)"] = f"{pages_[name]['ms']:.0f} ms ({pages_[name]['cpu_ms']:.0f})"
    if "freeze" in row:
        f = row["freeze"]
        cpu = f" · {f['pairs_per_cpu_s']:,.0f}/CPU-s" if "pairs_per_cpu_s" in f else ""
        cells["snapshot freeze: pairs/s (wall · per CPU second), peak RSS"] = \
            f"{f['pairs']:,} in {f['s']:.1f} s: {f['pairs_per_s']:,.0f}/s{cpu}, {f['peak_mib']:.0f} MiB"
    if "export_jsonl" in row:
        e = row["export_jsonl"]
        cells["export TRL JSONL (streamed): rows/s, peak"] = f"{e['rows_per_s']:,.0f}/s, {e['peak_mib']:.0f} MiB"
    if "export_all" in row:
        e = row["export_all"]
        cells["export, every format: rows/s, peak"] = f"{e['rows_per_s']:,.0f}/s, {e['peak_mib']:.0f} MiB"
    if "build_s" in row:
        cells["building the project (INSERT ... SELECT, + VACUUM ANALYZE)"] = f"{row['build_s']:.0f} s + {row['vacuum_s']:.0f} s"
    return cells


def table(paths: list[str]) -> str:
    """The markdown table of every (tree, size) row in the given JSONL files, old before new."""
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]
    rows = sorted((r for r in rows if "error" not in r), key=lambda r: (r.get("tree_name") != "old", r["size"]))
    columns = [(f"{r['tree_name']} {r['size'] // 1000}k" if r["size"] < 10**6 else f"{r['tree_name']} {r['size'] // 10**6}M", _cells(r))
               for r in rows]
    names = list(dict.fromkeys(k for _, c in columns for k in c))
    out = ["| operation | " + " | ".join(n for n, _ in columns) + " |", "| --- |" + " ---: |" * len(columns)]
    out += ["| " + name + " | " + " | ".join(c.get(name, "—") for _, c in columns) + " |" for name in names]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--trees", default="new=.", help="name=path,... (e.g. old=/tmp/old,new=.)")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--skip-pages", default="")
    parser.add_argument("--parts", default="hot,freeze,pages")
    parser.add_argument("--export-all-max", type=int, default=100_000, help="write every export format up to this size")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--out", default="var/bench_scale.jsonl")
    parser.add_argument("--table", nargs="*", help="print the markdown table of these result files and stop")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.child:
        sys.path.insert(0, str(Path.cwd()))
        print(json.dumps(child(args), default=str))
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for spec in args.trees.split(","):
        name, path = spec.split("=", 1)
        for size in map(int, args.sizes.split(",")):
            t0 = time.perf_counter()
            row = run_child(Path(path).resolve(), size, args)
            row.update(tree_name=name, total_s=time.perf_counter() - t0)
            with out.open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            print(json.dumps({k: v for k, v in row.items() if k != "explain"}, default=str)[:3000], flush=True)


if __name__ == "__main__":
    main()

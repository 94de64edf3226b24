"""`distillery`: the API from the shell. Prints JSON on stdout; `--wait` follows a job with a
progress bar on stderr; errors print the server's field paths and messages and exit 1.
URL and token from --url/--token or DISTILLERY_URL/DISTILLERY_TOKEN; the project from -p or
DISTILLERY_PROJECT."""
import argparse
import json
import os
import sys

import httpx

from distillery_client.client import Distillery, DistilleryError, JobFailed


class Bar:
    """A one-line progress bar on stderr: [#####.....] done/total status stage."""

    def __init__(self, stream=None, width: int = 30):
        self.stream, self.width, self.shown = stream or sys.stderr, width, False

    def __call__(self, job: dict) -> None:
        done, total = job.get("done") or 0, job.get("total") or 0
        filled = int(self.width * done / total) if total else 0
        line = f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total or '?'} {job['status']} {job.get('stage') or ''}"
        self.stream.write(line[:120].ljust(120))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _ids(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _config(pairs: list[str]) -> dict:
    """key=value (dotted keys nest: dckd.alpha=0.5) into a config dict; values parse as JSON when they can."""
    config = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        *groups, leaf = key.strip().split(".")
        target = config
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = _value(value)
    return config


def _newest(client, project, role, stage=None):
    versions = [v for v in client.model_versions(project, role=role) if stage is None or v["stage"] == stage]
    return max(versions, key=lambda v: v["id"])["id"] if versions else None


def _follow(client, answer, args):
    if not getattr(args, "wait", False):
        return answer
    bar = Bar()
    try:
        return client.wait(answer, progress=bar, poll=args.poll)
    finally:
        bar.close()


def _runs_launch(client, args):
    student = args.student or _newest(client, args.project, "student")
    inputs = {"teacher": args.teacher, "teacher_sft": args.teacher_sft, "teacher_dpo": args.teacher_dpo}
    if args.method in ("dckd", "adpa", "adpa_plus") and not args.teacher_sft and not args.teacher_dpo:
        inputs["teacher_sft"] = _newest(client, args.project, "teacher", "sft") or _newest(client, args.project, "teacher")
    if args.student is None or inputs["teacher_sft"] != args.teacher_sft:
        print(f"using student {student}, teacher_sft {inputs['teacher_sft']}", file=sys.stderr)
    answer = client.launch_run(args.project, method=args.method, snapshot=args.snapshot, student=student,
                               config=_config(args.set), name=args.name or "", **inputs)
    return _follow(client, answer, args)


def _snapshot_download(client, args):
    path = client.download_snapshot(args.project, args.snapshot, args.format, args.output)
    return {"path": str(path), "format": args.format, "bytes": path.stat().st_size}


COMMANDS = {
    "me": lambda c, a: c.me(),
    "projects": lambda c, a: c.projects(),
    "import": lambda c, a: c.import_prompts(a.project, a.file, prompt_set=a.prompt_set, default_split=a.split,
                                            progress=Bar() if a.wait else None),
    "models.list": lambda c, a: c.model_versions(a.project, role=a.role),
    "models.register": lambda c, a: c.register_model(a.project, name=a.name, role=a.role, source=a.source, stage=a.stage,
                                                     revision=a.revision),
    "models.endpoint": lambda c, a: c.register_endpoint(a.project, name=a.name, endpoint_url=a.endpoint_url,
                                                        served_model=a.served_model, role=a.role, stage=a.stage,
                                                        api_key_env=a.api_key_env),
    "generate": lambda c, a: _follow(c, c.generate(a.project, model_versions=_ids(a.models), prompt_set=a.prompt_set,
                                                   split=a.split, prompt_limit=a.limit, k=a.k, temperature=a.temperature,
                                                   max_new_tokens=a.max_new_tokens), a),
    "comparisons.build": lambda c, a: c.build_comparisons(a.project, job=a.job, mode=a.mode,
                                                          required_annotations=a.required_annotations),
    "judge": lambda c, a: _follow(c, c.judge(a.project, teacher=a.teacher, method=a.method, scope=a.scope,
                                             limit=a.limit), a),
    "judgements.list": lambda c, a: c.judgements(a.project, source=a.source),
    "judgements.export": lambda c, a: {"path": str(c.export_judgements(a.project, a.output or f"{a.project}-judgements.jsonl",
                                                                        a.source or ""))},
    "snapshots.list": lambda c, a: c.snapshots(a.project),
    "snapshots.freeze": lambda c, a: c.freeze(a.project, a.name, rule=a.rule, tie_policy=a.tie_policy,
                                              source_filter=a.source_filter),
    "snapshots.download": _snapshot_download,
    "runs.list": lambda c, a: c.runs(a.project),
    "runs.launch": _runs_launch,
    "runs.status": lambda c, a: c.run(a.project, a.run),
    "runs.metrics": lambda c, a: c.metrics(a.project, a.run, a.after),
    "runs.cancel": lambda c, a: c.run_action(a.project, a.run, "cancel"),
    "runs.resume": lambda c, a: _follow(c, c.run_action(a.project, a.run, "resume"), a),
    "runs.rerun": lambda c, a: _follow(c, c.run_action(a.project, a.run, "rerun"), a),
    "runs.checkpoints": lambda c, a: c.checkpoints(a.project, a.run),
    "runs.register": lambda c, a: c.register_checkpoint(a.project, a.run, a.step),
    "evaluate": lambda c, a: _follow(c, c.evaluate(a.project, name=a.name, teacher=a.teacher, model_versions=_ids(a.models),
                                                   prompt_set=a.prompt_set, split=a.split, prompt_limit=a.limit,
                                                   judges=a.judges.split(","), teacher_judge=a.teacher_judge,
                                                   max_new_tokens=a.max_new_tokens, benchmarks=a.benchmarks), a),
    "evaluations.list": lambda c, a: c.evaluations(a.project),
    "evaluations.show": lambda c, a: c.evaluation(a.project, a.evaluation),
    "wait": lambda c, a: _follow(c, {"url": a.url}, argparse.Namespace(wait=True, poll=a.poll)),
}


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-p", "--project", default=os.environ.get("DISTILLERY_PROJECT"), help="project slug")
    common.add_argument("--wait", action="store_true", help="follow the job to its end with a progress bar")
    common.add_argument("--poll", type=float, default=1.0, help="seconds between polls with --wait")
    root = argparse.ArgumentParser(prog="distillery", description=__doc__)
    root.add_argument("--url", default=None, help="server URL (DISTILLERY_URL)")
    root.add_argument("--token", default=None, help="API token (DISTILLERY_TOKEN)")
    sub = root.add_subparsers(dest="command", required=True)

    def cmd(name, group=None, **kw):
        target = group if group is not None else sub
        p = target.add_parser(name, parents=[common], **kw)
        p.set_defaults(key=f"{group.prog_name}.{name}" if group is not None else name)
        return p

    def group(name, help):
        g = sub.add_parser(name, help=help).add_subparsers(dest="action", required=True)
        g.prog_name = name
        return g

    cmd("me", help="who the token is")
    cmd("projects", help="projects the token reaches")
    p = cmd("import", help="upload a prompt file (JSONL, CSV, parquet, zipped HF dataset)")
    p.add_argument("file")
    p.add_argument("--set", dest="prompt_set", help="prompt set name (default: the file's name)")
    p.add_argument("--split", default="train", help="split for rows without one")

    models = group("models", "model versions")
    p = cmd("list", models)
    p.add_argument("--role")
    p = cmd("register", models, help="weights: a directory under the server's model roots, or a hub id")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=["teacher", "student"])
    p.add_argument("--source", required=True)
    p.add_argument("--stage", default="base", choices=["base", "sft", "dpo"])
    p.add_argument("--revision", default="")
    p = cmd("endpoint", models, help="an OpenAI-compatible endpoint")
    p.add_argument("name")
    p.add_argument("--endpoint-url", required=True)
    p.add_argument("--served-model", required=True)
    p.add_argument("--role", default="teacher")
    p.add_argument("--stage", default="base")
    p.add_argument("--api-key-env", default="")

    p = cmd("generate", help="a generation job: models answer a prompt set")
    p.add_argument("--models", required=True, help="model version ids, comma-separated")
    p.add_argument("--prompt-set", type=int, required=True)
    p.add_argument("--split", default="")
    p.add_argument("--limit", type=int)
    p.add_argument("-k", type=int, default=2)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=64)

    comparisons = group("comparisons", "comparisons")
    p = cmd("build", comparisons, help="comparisons from a finished generation job")
    p.add_argument("--job", type=int, required=True)
    p.add_argument("--mode", default="teacher_student")
    p.add_argument("--required-annotations", type=int, default=1)

    p = cmd("judge", help="a teacher-judge job")
    p.add_argument("--teacher", type=int, required=True)
    p.add_argument("--method", default="likelihood")
    p.add_argument("--scope", default="unjudged")
    p.add_argument("--limit", type=int)

    judgements = group("judgements", "judgements")
    p = cmd("list", judgements)
    p.add_argument("--source")
    p = cmd("export", judgements, help="all judgements as JSONL")
    p.add_argument("--source")
    p.add_argument("-o", "--output")

    snapshots = group("snapshots", "preference snapshots")
    cmd("list", snapshots)
    p = cmd("freeze", snapshots)
    p.add_argument("name")
    p.add_argument("--rule", default="majority")
    p.add_argument("--tie-policy", default="drop")
    p.add_argument("--source-filter", default="both")
    p = cmd("download", snapshots)
    p.add_argument("snapshot", type=int)
    p.add_argument("--format", default="trl", choices=["trl", "jsonl", "hf", "llamafactory", "axolotl"])
    p.add_argument("-o", "--output")

    runs = group("runs", "training runs")
    cmd("list", runs)
    p = cmd("launch", runs, help="launch a run; --set key=value for hyperparameters (ml.config)")
    p.add_argument("--method", required=True)
    p.add_argument("--snapshot", type=int, required=True)
    p.add_argument("--student", type=int, help="default: the newest student version")
    p.add_argument("--teacher", type=int)
    p.add_argument("--teacher-sft", type=int, help="DCKD/ADPA default: the newest SFT teacher")
    p.add_argument("--teacher-dpo", type=int)
    p.add_argument("--name")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    for action in ("status", "metrics", "cancel", "resume", "rerun", "checkpoints"):
        p = cmd(action, runs)
        p.add_argument("run", type=int)
        if action == "metrics":
            p.add_argument("--after", type=int, default=-1)
    p = cmd("register", runs, help="register a checkpoint as a model version")
    p.add_argument("run", type=int)
    p.add_argument("step", type=int)

    p = cmd("evaluate", help="an evaluation against the teacher")
    p.add_argument("--name", required=True)
    p.add_argument("--teacher", type=int, required=True)
    p.add_argument("--models", required=True, help="model version ids, comma-separated")
    p.add_argument("--prompt-set", type=int, required=True)
    p.add_argument("--split", default="eval")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--judges", default="teacher,oracle")
    p.add_argument("--teacher-judge", default="likelihood")
    p.add_argument("--benchmarks", default="", help="lm-eval task names, comma-separated (scores with standard errors)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    evaluations = group("evaluations", "evaluations")
    cmd("list", evaluations)
    p = cmd("show", evaluations, help="an evaluation with its results (win rates with intervals)")
    p.add_argument("evaluation", type=int)
    p = cmd("wait", help="follow a job by its URL")
    p.add_argument("url")
    return root


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        client = Distillery(url=args.url, token=args.token)
        if args.key not in ("me", "projects", "wait") and not args.project:
            raise DistilleryError(400, [{"loc": ["--project"], "msg": "name the project with -p or DISTILLERY_PROJECT"}])
        result = COMMANDS[args.key](client, args)
    except DistilleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps(exc.job, indent=2, default=str))
        return 2
    except httpx.HTTPError as exc:
        print(f"error: {type(exc).__name__} talking to {args.url or os.environ.get('DISTILLERY_URL', 'the server')}: {exc}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped waiting; the job goes on on the server", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2, default=str))
    return 0

"""`python -m ml evaluate`: compare one or more students with the teacher on held-out prompts. Every
model answers greedily; each student is reported with oracle accuracy (demo prompts that carry
family and answer), win rate against the teacher's answer with a 95% Wilson interval (a judge's two
presentation orders must agree, otherwise the pair is a tie), response length, and token-level
KL(teacher || student) teacher-forced on the teacher's answers."""
import json
from dataclasses import asdict
from pathlib import Path

from ml.cli.judge import DTYPES, JUDGES, add_judge_options, build_judge, progress_bar
from ml.data import read_jsonl
from ml.demo.tasks import Task, oracle_score
from ml.generation import generate
from ml.judges import JudgeItem, judge_pairs, verdict_outcome
from ml.metrics import length_stats, model_token_kl, oracle_accuracy, win_rate
from ml.modeling import TokenizerMismatchError, check_same_tokenizer, load_model


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="students vs the teacher on held-out prompts",
        description="Greedy answers from every model; per student: oracle accuracy, win rate vs the "
                    "teacher (95% Wilson interval), mean length, KL(teacher || student).")
    parser.add_argument("--student", action="append", required=True, help="student model (repeatable)")
    parser.add_argument("--teacher", required=True, help="teacher model: reference answers and judge")
    parser.add_argument("--prompts", type=Path, required=True,
                        help="JSONL rows {prompt[, family, answer]}; family+answer enable oracle accuracy")
    parser.add_argument("--judge", choices=JUDGES, default="generative",
                        help="judge for the win rate (implicit needs --teacher-dpo/--teacher-sft)")
    add_judge_options(parser)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the report (and every answer) as JSON")
    parser.set_defaults(func=run)


def _tasks(rows: list[dict]):
    """Demo tasks when every row carries family and answer, else None (no oracle to ask)."""
    if all("family" in row and "answer" in row for row in rows):
        return [Task(row["family"], row["prompt"], str(row["answer"])) for row in rows]
    return None


def _answers(loaded, prompts, args, name: str) -> list[str]:
    bar, on_progress = progress_bar(f"generating ({name})", len(prompts))
    with bar:
        outputs = generate(loaded.model, loaded.tokenizer, prompts, k=1, temperature=0.0,
                           max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                           seed=args.seed, on_progress=on_progress)
    return [samples[0].text for samples in outputs]


def _model_report(answers, tasks, tokenizer) -> dict:
    report = {"length": asdict(length_stats(answers, tokenizer=tokenizer))}
    if tasks is not None:
        report["oracle_accuracy"] = asdict(oracle_accuracy(tasks, answers, oracle_score))
    return report


def _student_report(student, teacher, judge, prompts, teacher_answers, tasks, args) -> dict:
    answers = _answers(student, prompts, args, student.source)
    report = {"source": student.source, **_model_report(answers, tasks, student.tokenizer)}
    bar, on_progress = progress_bar("judging vs teacher", len(prompts))
    with bar:
        items = [JudgeItem(p, s, t) for p, s, t in zip(prompts, answers, teacher_answers)]
        verdicts = judge_pairs(judge, items, batch_size=args.batch_size, on_progress=on_progress)
    report["win_rate"] = asdict(win_rate([verdict_outcome(v) for v in verdicts]))
    try:
        check_same_tokenizer(teacher.tokenizer, student.tokenizer, method="KL to the teacher")
    except TokenizerMismatchError:
        report["kl_to_teacher"] = None  # a token-level KL is undefined across vocabularies
    else:
        bar, on_progress = progress_bar("KL to teacher", len(prompts))
        with bar:
            report["kl_to_teacher"] = model_token_kl(teacher.model, student.model, teacher.tokenizer,
                                                     list(zip(prompts, teacher_answers)),
                                                     batch_size=args.batch_size, on_progress=on_progress)
    report["answers"] = answers
    return report


def _print_row(name: str, report: dict) -> None:
    length = report["length"]
    parts = [f"{name}", f"length mean {length['mean']:.1f} median {length['median']:.0f} p90 {length['p90']:.1f}"]
    if "oracle_accuracy" in report:
        accuracy = report["oracle_accuracy"]
        families = ", ".join(f"{f} {a:.2f}" for f, a in accuracy["by_family"].items())
        parts.append(f"oracle {accuracy['overall']:.3f} ({families})")
    if "win_rate" in report:
        w = report["win_rate"]
        parts.append(f"win rate vs teacher {w['rate']:.3f} [{w['low']:.3f}, {w['high']:.3f}] n={w['n']}")
    if "kl_to_teacher" in report:
        kl = report["kl_to_teacher"]
        parts.append("KL(teacher||student) " + ("n/a (tokenizers differ)" if kl is None else f"{kl:.4f} nats/token"))
    print("\n  ".join(parts))


def run(args) -> int:
    rows = read_jsonl(args.prompts)
    if not rows:
        raise SystemExit(f"{args.prompts}: no prompts")
    prompts, tasks = [row["prompt"] for row in rows], _tasks(rows)
    teacher = load_model(args.teacher, device=args.device, dtype=DTYPES[args.dtype])
    teacher_answers = _answers(teacher, prompts, args, "teacher")
    judge = build_judge(args.judge, args, teacher=teacher)
    report = {"judge": judge.identity, "prompts": str(args.prompts),
              "teacher": {"source": teacher.source, **_model_report(teacher_answers, tasks, teacher.tokenizer),
                          "answers": teacher_answers},
              "students": []}
    for source in args.student:
        student = load_model(source, device=args.device, dtype=DTYPES[args.dtype])
        report["students"].append(_student_report(student, teacher, judge, prompts, teacher_answers, tasks, args))
        del student  # one student in memory at a time
    print(f"judge: {judge.identity}")
    _print_row(f"teacher {teacher.source}", report["teacher"])
    for student_report in report["students"]:
        _print_row(f"student {student_report['source']}", student_report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0

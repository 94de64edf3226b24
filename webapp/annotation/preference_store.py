"""Stores parsed preference rows (preference_import.py) as comparisons with judgements, in one
transaction: prompts go into a prompt set named after the dataset (train split), each answer becomes
a generation (origin=import) of a weightless stand-in model version naming where it came from
(`imported:<dataset>` or `imported:<dataset>:<model>`; its source is `import:<dataset>`, no weights),
and each vote becomes a judgement with source=imported and judge name `import:<dataset>[:<rater>]`.
Imported comparisons are complete (already judged), so they stay out of the annotation queue but
count in a snapshot frozen from the teacher/imported side or both."""
import re
from collections import Counter

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q

from webapp.annotation import events
from webapp.annotation.models import (Comparison, ComparisonItem, ComparisonKind, ComparisonSource, ComparisonStatus,
                                      Judgement, JudgementSource, PreferenceImport, Verdict)
from webapp.catalog.models import ModelVersion, Prompt, PromptSet
from webapp.catalog.services import prompt_content_hash, prompts_bulk_create
from webapp.generation.models import Generation

DATASET_NAME = re.compile(r"^[\w.\-]{1,80}$")


def dataset_name_check(name: str) -> str:
    name = name.strip()
    if not DATASET_NAME.match(name):
        raise ValidationError("Dataset name: 1 to 80 letters, digits, dots, dashes or underscores (it names the judge).")
    return name


def _verdict(ranking: list, both_bad: bool, kind: str) -> str:
    if kind == ComparisonKind.KWAY:
        return Verdict.RANKING
    if both_bad:
        return Verdict.BOTH_BAD
    return Verdict.TIE if len(ranking) == 1 else (Verdict.A if ranking[0] == [0] else Verdict.B)


def _model_versions(project, dataset: str, rows) -> dict:
    wanted = {c["model"] for r in rows for c in r.candidates}
    names = {m: f"imported:{dataset}" + (f":{m}" if m else "") for m in wanted}
    existing = {mv.name: mv for mv in ModelVersion.objects.filter(project=project, name__in=names.values())}
    for model, name in names.items():
        if name not in existing:
            existing[name] = ModelVersion.objects.create(project=project, name=name[:200], role="reference",
                                                         source=f"import:{dataset}", config={"imported": True})
    return {m: existing[n] for m, n in names.items()}


def preferences_import(*, project, dataset: str, rows: list) -> dict:
    """Writes every row or none. Refuses a dataset name already imported into this project (a
    second upload of the same file must not double its votes). Returns counts for the message."""
    dataset = dataset_name_check(dataset)
    same_dataset = Q(judge_name=f"import:{dataset}") | Q(judge_name__startswith=f"import:{dataset}:") | Q(
        judge_name__startswith=f"import:{dataset}#")
    taken = ValidationError(f"Dataset {dataset!r} was already imported into this project; give this upload another name.")
    if Judgement.objects.filter(same_dataset, comparison__project=project, source=JudgementSource.IMPORTED).exists():
        raise taken
    with transaction.atomic():
        if not _claim_dataset(project, dataset):
            raise taken  # another upload of this name got there first (it committed; or it is still writing)
        prompt_set, _ = PromptSet.objects.get_or_create(project=project, name=f"imported: {dataset}",
                                                        defaults={"description": f"Prompts of the imported dataset {dataset}."})
        prompt_rows = [{"text": r.prompt} if isinstance(r.prompt, str) else {"messages": r.prompt} for r in rows]
        prompts_bulk_create(prompt_set=prompt_set, rows=[dict(p, split="train", tags=["imported"], metadata={"dataset": dataset})
                                                         for p in prompt_rows])
        prompt_ids = dict(Prompt.objects.filter(prompt_set=prompt_set).values_list("content_hash", "id"))
        models = _model_versions(project, dataset, rows)
        generations = Generation.objects.bulk_create([
            Generation(prompt_id=prompt_ids[prompt_content_hash(text=p.get("text", ""), messages=p.get("messages"))],
                       model_version=models[c["model"]], sample_index=i, text=c["text"], origin="import", temperature=0)
            for r, p in zip(rows, prompt_rows) for i, c in enumerate(r.candidates)], batch_size=1000)
        comparisons = Comparison.objects.bulk_create([
            Comparison(project=project, prompt_id=prompt_ids[prompt_content_hash(text=p.get("text", ""), messages=p.get("messages"))],
                       kind=ComparisonKind.PAIRWISE if len(r.candidates) == 2 else ComparisonKind.KWAY,
                       source=ComparisonSource.IMPORTED, status=ComparisonStatus.COMPLETE, required_annotations=1)
            for r, p in zip(rows, prompt_rows)], batch_size=1000)
        items, judgements, cursor = [], [], 0
        for row, comparison in zip(rows, comparisons):
            ids = [g.pk for g in generations[cursor:cursor + len(row.candidates)]]
            cursor += len(row.candidates)
            items += [ComparisonItem(comparison=comparison, generation_id=gid, position=i) for i, gid in enumerate(ids)]
            judgements += _judgements(comparison, row, ids, dataset)
        ComparisonItem.objects.bulk_create(items, batch_size=1000)
        Judgement.objects.bulk_create(judgements, batch_size=1000)
        events.counters_changed(project.pk)
    return {"comparisons": len(comparisons), "judgements": len(judgements), "prompt_set": prompt_set,
            "raters": len({j.judge_name for j in judgements})}


def _claim_dataset(project, dataset: str) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on the unique (project, dataset): of four uploads of one file
    at once, one stores it and the others wait for its commit and are refused (issue 22)."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {PreferenceImport._meta.db_table} (project_id, dataset, created_at) VALUES (%s, %s, now()) "
                       "ON CONFLICT (project_id, dataset) DO NOTHING RETURNING id", [project.pk, dataset])
        return cursor.fetchone() is not None


def _judgements(comparison, row, ids: list, dataset: str) -> list:
    seen = Counter()
    out = []
    for vote in row.votes:
        name = f"import:{dataset}" + (f":{vote['rater']}" if vote["rater"] else "")
        seen[name] += 1
        if seen[name] > 1:  # one rater judged the same item twice in the file: keep both, told apart
            name = f"{name}#{seen[name]}"
        ranking = [[ids[i] for i in group] for group in vote["ranking"]]
        out.append(Judgement(comparison=comparison, source=JudgementSource.IMPORTED, judge_name=name[:200],
                             verdict=_verdict(vote["ranking"], vote["both_bad"], comparison.kind), ranking=ranking,
                             shown_order=ids, details={"dataset": dataset, "rater": vote["rater"], **row.metadata}))
    return out

"""The migrations that add the race-deciding constraints (issue 22) run on a database where races
already left duplicates: a generation set built twice, a dataset imported with many judgements, two
loop rounds in progress. They apply, keep every row, and leave the first of each duplicate keyed."""
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.webapp.annotation.conftest import make_world
from webapp.annotation import preference_import, preference_store
from webapp.annotation.models import Comparison, PreferenceImport
from webapp.annotation.services import comparisons_build
from webapp.evaluation.models import LoopRound
from webapp.generation.models import Generation

BEFORE = [("annotation", "0010_judgejob_unparseable"), ("evaluation", "0003_job_lifecycle")]
SAMPLE = Path(__file__).parent / "annotation" / "samples" / "trl_standard.jsonl"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.slow
def test_constraints_apply_over_existing_duplicates(transactional_db, project, researcher):
    world = make_world(project, prompts=1)
    built = comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]), mode="teacher_student")
    rows = preference_import.parse_preferences(SAMPLE.read_bytes(), filename="p.jsonl").rows
    preference_store.preferences_import(project=project, dataset="old-file", rows=rows)
    round_fields = {"project": project, "student": world["student"], "teacher": world["teacher"], "prompt_set": world["prompt_set"]}
    first_round = LoopRound.objects.create(number=1, **round_fields)
    leaf = {app: name for app, name in MigrationExecutor(connection).loader.graph.leaf_nodes()}
    _migrate(BEFORE)
    try:
        with connection.cursor() as cursor:  # what a double click left behind before the constraints
            cursor.execute("INSERT INTO annotation_comparison (project_id, prompt_id, kind, source, required_annotations, priority,"
                           " status, created_at) SELECT project_id, prompt_id, kind, source, required_annotations, priority, status,"
                           " created_at FROM annotation_comparison WHERE id = %s RETURNING id", [built[0].pk])
            twin = cursor.fetchone()[0]
            cursor.execute("INSERT INTO annotation_comparisonitem (comparison_id, generation_id, position) SELECT %s, generation_id,"
                           " position FROM annotation_comparisonitem WHERE comparison_id = %s", [twin, built[0].pk])
            cursor.execute("INSERT INTO evaluation_loopround (project_id, number, student_id, teacher_id, prompt_set_id, prompt_count,"
                           " stats, status, attempt, worker, cancel_requested, progress_done, progress_total, progress_at_claim,"
                           " stage, error, created_at) SELECT project_id, 2, student_id, teacher_id, prompt_set_id, prompt_count,"
                           " stats, 'running', 1, worker, false, 0, 0, 0, stage, '', now() FROM evaluation_loopround WHERE id = %s",
                           [first_round.pk])
    finally:
        _migrate([("annotation", leaf["annotation"]), ("evaluation", leaf["evaluation"])])
    keys = dict(Comparison.objects.filter(project=project).exclude(source="imported").values_list("pk", "build_key"))
    assert len(keys) == 3 and keys[twin] == "" and keys[built[0].pk] == keys[built[0].pk].strip() != ""
    assert list(PreferenceImport.objects.values_list("project_id", "dataset")) == [(project.pk, "old-file")]
    rounds = dict(LoopRound.objects.values_list("number", "status"))
    assert rounds == {1: "cancelled", 2: "running"}  # the running one is kept, the other cancelled with the reason
    assert "double start" in LoopRound.objects.get(number=1).error

"""The project home's loop state: each feature app contributes its own counts, and the projects app
imports none of their models (the dependency points from the features to projects, not back)."""
import ast
from pathlib import Path

import pytest

from tests.webapp.annotation.conftest import make_world
from webapp.annotation.services import comparisons_build
from webapp.generation.models import Generation
from webapp.projects.selectors import project_loop_state

FEATURES = ("webapp.annotation", "webapp.catalog", "webapp.evaluation", "webapp.generation", "webapp.training")


def test_projects_selectors_import_no_feature_app():
    tree = ast.parse(Path("webapp/projects/selectors.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
               [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith(FEATURES)], imported


@pytest.mark.django_db
def test_loop_state_counts_every_step(project, researcher):
    world = make_world(project, prompts=3)
    comparisons_build(project=project, generations=Generation.objects.filter(job=world["job"]), mode="teacher_student")
    state = project_loop_state(project=project)
    assert state["prompts"] == 3 and state["generations"] == 12 and state["model_versions"] == 2
    assert state["comparisons"]["pending"] > 0 and state["comparisons"]["done"] == 0
    assert state["judgements"] == 0 and state["snapshots"] == 0 and state["evaluations"] == 0
    assert state["runs"] == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0}

"""The project home shows the loop as numbered steps with their state and the next action: the
rule (loop_guide.loop_steps) on hand-made counts, and the page for a project part-way through."""
import re

import pytest

from webapp.projects.loop_guide import loop_steps

EMPTY = {"prompts": 0, "model_versions": 0, "generations": 0, "comparisons": {"pending": 0, "done": 0, "disputed": 0},
         "judgements": 0, "snapshots": 0, "runs": {"queued": 0, "running": 0, "succeeded": 0, "failed": 0},
         "evaluations": 0, "loop_rounds": 0}


def _current(steps):
    return [s["title"] for s in steps if s["current"]]


def test_a_new_project_starts_at_import():
    steps = loop_steps(EMPTY)
    assert [s["number"] for s in steps] == list(range(1, 8)) and _current(steps) == ["Generate"]
    assert steps[0]["actions"][0][1] == "catalog_home" and not any(s["done"] for s in steps)


def test_each_finished_step_moves_the_next_action_on():
    state = {**EMPTY, "prompts": 10, "model_versions": 2}
    assert loop_steps(state)[0]["actions"][0] == ("Generate answers", "generation_jobs", "")
    state["generations"] = 40
    assert _current(loop_steps(state)) == ["Compare"]
    state["comparisons"] = {"pending": 20, "done": 0, "disputed": 0}
    assert _current(loop_steps(state)) == ["Annotate / teacher-judge"]
    state.update(judgements=5, comparisons={"pending": 15, "done": 5, "disputed": 0})
    assert _current(loop_steps(state)) == ["Snapshot"]
    state["snapshots"] = 1
    steps = loop_steps(state)
    assert _current(steps) == ["Train"] and steps[4]["actions"][0] == ("Train a DCKD student", "training_new", "?method=dckd")
    state["runs"] = {**EMPTY["runs"], "succeeded": 1}
    assert _current(loop_steps(state)) == ["Evaluate"]
    state["evaluations"] = 1
    assert _current(loop_steps(state)) == ["Next round"]


@pytest.mark.django_db
def test_home_page_lists_the_steps_with_the_next_action(client_for, project, researcher, annotator):
    from webapp.catalog.models import ModelVersion, Prompt, PromptSet

    prompt_set = PromptSet.objects.create(project=project, name="p")
    Prompt.objects.create(prompt_set=prompt_set, text="What is 1 + 1?", content_hash="h")
    ModelVersion.objects.create(project=project, name="t", role="teacher", source="org/t")
    html = client_for(researcher).get(f"/p/{project.slug}/").content.decode()
    steps = re.findall(r'<li class="loop-step([^"]*)" data-step="(\d)">', html)
    assert [n for _, n in steps] == [str(i) for i in range(1, 8)] and "current" in steps[0][0]
    assert f'class="button primary" href="/p/{project.slug}/generation/"' in html
    assert "1 prompt, 1 model version" in html
    assert 'id="loop-steps"' not in client_for(annotator).get(f"/p/{project.slug}/").content.decode()

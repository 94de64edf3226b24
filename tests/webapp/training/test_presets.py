"""Hyperparameters sized to the chosen models: the rule (webapp/training/presets.py) on hand-worked
numbers, and the launch form's "size to the chosen student and snapshot" button."""
import re

import pytest

from webapp.annotation.models import PreferenceSnapshot
from webapp.catalog.models import ModelVersion
from webapp.training.presets import sized_config


def test_a_small_student_on_few_pairs_gets_larger_steps_and_enough_of_them():
    config = sized_config("dckd", student_params=2_000_000, pair_count=400)
    # lr: 5e-7 × (7e9 / 2e6)^(2/3) = 5e-7 × 230.5 = 1.15e-4 → 0.00012; global batch: 400 // 100 = 4 = 4 × 1;
    # 400 / 4 = 100 steps an epoch → ⌈450 / 100⌉ = 5 epochs.
    assert (config["learning_rate"], config["batch_size"], config["grad_accum"], config["num_epochs"]) == (1.2e-4, 4, 1, 5)
    assert config["alpha_w"] == 0.1  # everything else keeps the paper's value


def test_the_demo_student_on_the_demo_loops_pairs_gets_the_measured_setting():
    # 5e-7 × (7e9 / 58,416)^(2/3) = 1.2e-3 → capped at 1e-3; 2,378 // 100 = 23 → 16 = 16 × 1;
    # ⌈2378 / 16⌉ = 149 steps an epoch → ⌈450 / 149⌉ = 4 epochs (docs/benchmarks.md, "The demo loop").
    config = sized_config("dckd", student_params=58_416, pair_count=2_378)
    assert (config["learning_rate"], config["batch_size"], config["grad_accum"], config["num_epochs"]) == (1e-3, 16, 1, 4)


def test_a_7b_student_on_many_pairs_keeps_the_papers_values():
    config = sized_config("dckd", student_params=7_000_000_000, pair_count=60_000)
    assert (config["learning_rate"], config["batch_size"] * config["grad_accum"], config["num_epochs"]) == (5e-07, 128, 1)


def test_caps_and_nested_stages():
    sft = sized_config("sft", student_params=1_000, pair_count=10)  # tiny: 1e-3 at most; batch 1; 10 epochs at most
    assert sft["learning_rate"] == 1e-3 and sft["batch_size"] * sft["grad_accum"] == 1 and sft["num_epochs"] == 10
    both = sized_config("adpa_plus", student_params=2_000_000, pair_count=400)
    assert both["dckd"]["learning_rate"] == 1.2e-4 and both["adpa"]["num_epochs"] == 5


@pytest.mark.django_db
def test_launch_form_sizes_to_the_chosen_student_and_snapshot(client_for, project, researcher):
    student = ModelVersion.objects.create(project=project, name="tiny-student", role="student", source="org/s",
                                          parameter_count=2_000_000)
    snapshot = PreferenceSnapshot.objects.create(project=project, name="s1", content_hash="h" * 64, pair_count=400)
    response = client_for(researcher).post(f"/p/{project.slug}/training/new/?method=dckd", {
        "method": "dckd", "student": student.pk, "snapshot": snapshot.pk, "size_to_models": "1", "cfg:learning_rate": "5e-7"})
    html = response.content.decode()
    assert response.status_code == 200 and "sized to tiny-student" in html
    assert re.search(r'name="cfg:learning_rate" value="0.00012"', html)
    assert re.search(r'name="cfg:num_epochs" value="5"', html)
    assert re.search(rf'<option value="{student.pk}" selected>', html) and re.search(rf'<option value="{snapshot.pk}" selected>', html)
    assert not project.training_runs.exists()  # sizing never launches

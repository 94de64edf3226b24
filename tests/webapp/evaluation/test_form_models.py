"""The new-evaluation form pre-checks only students a worker can load (a missing directory, a hub id
not in the local cache, or an imported dataset's placeholder would fail the whole evaluation), and
names each candidate with its stage: a trained student says what trained it, not "Base"."""
import re

import pytest

from webapp.catalog.models import ModelVersion

pytestmark = pytest.mark.django_db


def _model_dir(root, name):
    path = root / name
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"\0" * 8)
    return str(path)


def test_only_loadable_students_are_prechecked(client_for, project, researcher, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    mv = {}
    for name, role, source, method in (("teacher", "teacher", _model_dir(tmp_path, "t"), ""),
                                       ("base-student", "student", _model_dir(tmp_path, "s"), ""),
                                       ("dckd-student", "student", _model_dir(tmp_path, "d"), "dckd"),
                                       ("gone-student", "student", str(tmp_path / "deleted"), ""),
                                       ("hub-student", "student", "org/not-downloaded", ""),
                                       ("imported:arena:vicuna", "reference", "import:arena", "")):
        mv[name] = ModelVersion.objects.create(project=project, name=name, role=role, source=source, method=method)
    html = client_for(researcher).get(f"/p/{project.slug}/evaluations/").content.decode()
    checked = {int(v) for v in re.findall(r'name="model_versions" value="(\d+)"[^>]*checked', html)}
    assert checked == {mv["base-student"].pk, mv["dckd-student"].pk}
    assert "dckd-student · after DCKD" in html and "base-student · Base" in html
    assert "gone-student · Base (weights not found here)" in html and "hub-student · Base (weights not found here)" in html


def test_catalog_shows_a_trained_students_method_as_its_stage(client_for, project, researcher):
    ModelVersion.objects.create(project=project, name="s-dckd", role="student", source="org/s", method="adpa_plus")
    ModelVersion.objects.create(project=project, name="t-sft", role="teacher", source="org/t", stage="sft")
    html = client_for(researcher).get(f"/p/{project.slug}/catalog/").content.decode()
    assert ">s-dckd</a></td><td>student</td><td>after ADPA+</td>" in html
    assert ">t-sft</a></td><td>teacher</td><td>After SFT (π_sft)</td>" in html

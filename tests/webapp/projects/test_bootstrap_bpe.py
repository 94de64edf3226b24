"""`bootstrap_demo` registers the second demo student (another tokenizer family, ml/demo/bpe_student.py)
when the demo dir has one, once; a demo dir without it bootstraps as before."""
import shutil

import pytest
from django.core.management import call_command

from webapp.catalog.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_the_bpe_student_is_registered_when_built(tmp_path, tiny_demo_dir, settings):
    settings.EMBEDDED_SERVICES = True
    demo = tmp_path / "demo"
    shutil.copytree(tiny_demo_dir, demo)
    call_command("bootstrap_demo", demo_dir=str(demo))
    assert not ModelVersion.objects.filter(name="demo-student-bpe").exists()
    shutil.copytree(tiny_demo_dir / "student", demo / "student-bpe")  # stands in for the built one
    call_command("bootstrap_demo", demo_dir=str(demo))
    call_command("bootstrap_demo", demo_dir=str(demo))
    version = ModelVersion.objects.get(name="demo-student-bpe")
    assert version.role == "student" and version.source == str(demo / "student-bpe")

"""The launch form's Experiment trackers field: tracker names are normalised, an unknown one is an
error on the field."""
import pytest

from tests.webapp.conftest import admin_user, project  # noqa: F401  (fixtures)
from webapp.training.forms import RunForm

pytestmark = pytest.mark.django_db


def test_report_to_is_checked_on_the_launch_form(project):
    form = RunForm({"report_to": "MLflow, tensorboard"}, project=project, method="dpo")
    form.is_valid()
    assert "report_to" not in form.errors and form.cleaned_data["report_to"] == "mlflow,tensorboard"
    form = RunForm({"report_to": "comet"}, project=project, method="dpo")
    assert not form.is_valid() and "unknown tracker comet" in form.errors["report_to"][0]

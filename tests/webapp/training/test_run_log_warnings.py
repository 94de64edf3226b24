"""A run's log is free of the libraries' own FutureWarnings (transformers' TrainingArguments
deprecations, as a DPO run raises them), while real warnings and the run's lines stay."""
import logging
import warnings

import pytest

from webapp.catalog.models import ModelVersion
from webapp.lifecycle import JobStatus
from webapp.training.models import TrainingRun
from webapp.training.progress import RunRecorder

pytestmark = pytest.mark.django_db


@pytest.fixture
def captured_warnings():
    """Warnings reach the logging system, as in the Celery worker."""
    logging.captureWarnings(True)
    yield
    logging.captureWarnings(False)


def test_library_future_warnings_stay_out_of_the_run_log(project, researcher, captured_warnings, tmp_path):
    from transformers import TrainingArguments

    student = ModelVersion.objects.create(project=project, name="s", role="student", source="org/s")
    run = TrainingRun.objects.create(project=project, name="r", method="dpo", student=student, created_by=researcher,
                                     status=JobStatus.RUNNING, attempt=1)
    warnings.simplefilter("always")  # as for a first run in a fresh worker: nothing was shown before
    with RunRecorder(run_id=run.id, attempt=1) as recorder:
        TrainingArguments(output_dir=str(tmp_path), gradient_checkpointing=False, report_to=[])
        warnings.warn("the snapshot has only 3 pairs", UserWarning)
        logging.getLogger("ml.recipes").warning("loss is NaN at step 3")
    run.refresh_from_db()
    assert "FutureWarning" not in recorder.log_tail and "deprecated" not in run.log_tail
    assert "the snapshot has only 3 pairs" in run.log_tail and "loss is NaN at step 3" in run.log_tail

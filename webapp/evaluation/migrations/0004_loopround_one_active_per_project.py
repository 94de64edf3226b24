"""One round in progress per project (issue 22: two starts at once made two). Rounds a double click
already duplicated would break the new constraint, so first every project keeps one active round
(the running one, else the oldest) and the others are cancelled with the reason; nothing is deleted."""
from django.db import migrations, models

ACTIVE = ("queued", "running")


def cancel_duplicate_active_rounds(apps, schema_editor):
    LoopRound = apps.get_model("evaluation", "LoopRound")
    kept = set()
    for loop_round in LoopRound.objects.filter(status__in=ACTIVE).order_by("project_id", "-status", "id"):
        # "-status" puts running before queued
        if loop_round.project_id not in kept:
            kept.add(loop_round.project_id)
            continue
        LoopRound.objects.filter(pk=loop_round.pk).update(
            status="cancelled", error="Cancelled when one round per project became the rule: another round of "
                                      "this project was already in progress (a double start).")


class Migration(migrations.Migration):

    dependencies = [
        ("evaluation", "0003_job_lifecycle"),
    ]

    operations = [
        migrations.RunPython(cancel_duplicate_active_rounds, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="loopround",
            constraint=models.UniqueConstraint(condition=models.Q(("status__in", ["queued", "running"])),
                                               fields=("project",), name="loopround_one_active_per_project"),
        ),
    ]

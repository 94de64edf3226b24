"""Constraints that decide racing writes (issue 22): one PreferenceImport row per (project, dataset),
and a build key (sorted generation ids) unique per project on built comparisons.

Data-safe on an existing database: the imports already stored get their PreferenceImport row (from
their judges' names, `import:<dataset>[:rater][#n]`, once per dataset however many times a race
stored it), and only the first built comparison of each generation set gets its key; earlier
duplicates keep an empty key (outside the constraint) with their judgements, nothing is deleted."""
import django.db.models.deletion
from django.db import migrations, models

BACKFILL_IMPORTS = r"""
INSERT INTO annotation_preferenceimport (project_id, dataset, created_at)
SELECT DISTINCT c.project_id, substring(j.judge_name from '^import:([A-Za-z0-9_.\-]{1,80})'), now()
FROM annotation_judgement j JOIN annotation_comparison c ON c.id = j.comparison_id
WHERE j.source = 'imported' AND substring(j.judge_name from '^import:([A-Za-z0-9_.\-]{1,80})') IS NOT NULL
ON CONFLICT DO NOTHING
"""

BACKFILL_BUILD_KEYS = """
UPDATE annotation_comparison c SET build_key = ranked.key
FROM (
    SELECT c2.id, s.key, row_number() OVER (PARTITION BY c2.project_id, s.key ORDER BY c2.id) AS n
    FROM annotation_comparison c2
    JOIN (SELECT comparison_id, string_agg(generation_id::text, ',' ORDER BY generation_id) AS key
          FROM annotation_comparisonitem GROUP BY comparison_id) s ON s.comparison_id = c2.id
    WHERE c2.evaluation_id IS NULL AND c2.loop_round_id IS NULL
      AND c2.source IN ('teacher_student', 'student_student', 'kway')
) ranked
WHERE c.id = ranked.id AND ranked.n = 1 AND length(ranked.key) <= 200
"""


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0010_judgejob_unparseable'),
        ('projects', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='PreferenceImport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('dataset', models.CharField(max_length=80)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='preference_imports',
                                              to='projects.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'dataset'), name='preferenceimport_unique_dataset')],
            },
        ),
        migrations.RunSQL(BACKFILL_IMPORTS, migrations.RunSQL.noop),
        migrations.AddField(
            model_name='comparison',
            name='build_key',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.RunSQL(BACKFILL_BUILD_KEYS, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='comparison',
            constraint=models.UniqueConstraint(condition=models.Q(('build_key', ''), _negated=True), fields=('project', 'build_key'),
                                               name='comparison_unique_build_key'),
        ),
    ]

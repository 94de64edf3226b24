"""Imported preference data: comparisons and judgements may come from an imported dataset."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0006_snapshot_sources_agreement'),
    ]

    operations = [
        migrations.AlterField(
            model_name='comparison',
            name='source',
            field=models.CharField(choices=[('teacher_student', 'Teacher vs student'), ('student_student', 'Student samples'), ('kway', 'k-way'), ('evaluation', 'Evaluation'), ('loop', 'Next round'), ('playground', 'Playground'), ('imported', 'Imported')], default='teacher_student', max_length=20),
        ),
        migrations.AlterField(
            model_name='judgement',
            name='source',
            field=models.CharField(choices=[('human', 'Human'), ('teacher', 'Teacher-judge'), ('oracle', 'Oracle'), ('imported', 'Imported dataset')], max_length=10),
        ),
    ]

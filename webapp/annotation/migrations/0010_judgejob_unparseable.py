from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0009_next_lease_function'),
    ]

    operations = [
        migrations.AddField(
            model_name='judgejob',
            name='unparseable',
            field=models.PositiveIntegerField(default=0, help_text='Comparisons whose judge answer could not be read (endpoint judges): no verdict stored, never counted as a tie.'),
        ),
    ]

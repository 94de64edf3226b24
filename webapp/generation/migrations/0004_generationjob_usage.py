from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0003_job_lifecycle'),
    ]

    operations = [
        migrations.AddField(
            model_name='generationjob',
            name='usage',
            field=models.JSONField(blank=True, default=dict, help_text="Endpoint versions' token and request counts, {version id: {prompt_tokens, completion_tokens, requests, retries}}, summed over attempts."),
        ),
    ]

"""`manage.py import_prompts PATH --project SLUG --prompt-set NAME`: the same validation and atomic,
de-duplicated import as the upload page, for files and HF datasets directories on the server."""
from django.core.management.base import BaseCommand, CommandError

from webapp.catalog import importers
from webapp.catalog.models import Split
from webapp.projects.models import Project


class Command(BaseCommand):
    help = "Import prompts from JSONL, CSV, parquet or an HF datasets directory (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--prompt-set", required=True, help="prompt set name (created if new)")
        parser.add_argument("--split", default=Split.TRAIN, choices=Split.values, help="split for rows without one")
        parser.add_argument("--dry-run", action="store_true", help="validate only")

    def handle(self, *args, path, project, prompt_set, split, dry_run, **options):
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"No project with slug {project!r}.")
        result = importers.parse_path(path, default_split=split)
        if result.errors:
            raise CommandError(f"{path}: nothing imported, {len(result.errors)} problem(s):\n  " + "\n  ".join(result.errors))
        if dry_run:
            self.stdout.write(f"{len(result.rows)} valid prompts ({result.format}); nothing imported (--dry-run).")
            return
        prompt_set_obj, created, duplicates = importers.prompts_import(project=target, prompt_set_name=prompt_set, rows=result.rows)
        self.stdout.write(self.style.SUCCESS(f"Imported {created} prompts into {prompt_set_obj.name} ({duplicates} duplicates skipped)."))

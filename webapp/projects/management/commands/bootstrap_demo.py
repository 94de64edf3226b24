"""Creates the demo admin and the demo project (teacher and student model versions, demo prompts)
from a demo directory built by `python -m ml demo build`. Idempotent: a second run changes nothing.

The admin's password: `--password` if given (checked by Django's password validators); otherwise the
well-known admin/distillery only on the embedded default (`make run`, the database the launcher
started, reachable from this machine alone); anywhere else a random one, printed this once."""
import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from webapp.catalog.models import ModelVersion, PromptSet
from webapp.catalog.services import model_version_register, prompts_bulk_create
from webapp.projects.models import Project
from webapp.projects.services import project_create

DEMO_SLUG = "demo"
DEMO_PASSWORD = "distillery"  # embedded default only: see the module docstring
GUIDELINES = """Judge which answer is **correct** first; if both are correct (or both wrong), prefer the
shorter, cleaner one. Use *tie* when they are equally good and *both bad* when neither is usable.

Keys: `1`/`←` A better · `2`/`→` B better · `3` tie · `4` both bad · `Enter` submit · `s` skip · `u` undo."""


class Command(BaseCommand):
    help = "Create the demo admin user and demo project from a built demo directory."

    def add_arguments(self, parser):
        parser.add_argument("--demo-dir", default=str(settings.DEMO_DIR))
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None,
                            help="Default: 'distillery' on the embedded default, else a random one, printed once.")

    def handle(self, *args, demo_dir, username, password, **options):
        demo = Path(demo_dir)
        for part in ("teacher", "student", "prompts/train.jsonl", "prompts/eval.jsonl"):
            if not (demo / part).exists():
                raise CommandError(f"{demo / part} is missing: build the demo first (python -m ml demo build --out {demo}).")
        User = get_user_model()
        admin = User.objects.filter(username=username).first()
        login_note = f"login {username} (existing user, password unchanged)"
        if admin is None:
            password = self._password(username, password)
            admin = User.objects.create_superuser(username=username, password=password, email="")
            login_note = f"login {username} / {password}"
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = project_create(name="Demo", created_by=admin, guidelines=GUIDELINES,
                                     description="Tiny Llama teacher and student on checkable tasks (arithmetic, words, counting).")
            Project.objects.filter(pk=project.pk).update(slug=DEMO_SLUG)
            project.refresh_from_db()
        self._models(project, demo)
        self._prompts(project, demo)
        self.stdout.write(self.style.SUCCESS(f"Demo project ready: /p/{project.slug}/ ({login_note})"))

    def _password(self, username: str, password: str | None) -> str:
        if password is None:
            return DEMO_PASSWORD if settings.EMBEDDED_SERVICES else secrets.token_urlsafe(12)
        try:
            validate_password(password, user=get_user_model()(username=username))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        return password

    def _models(self, project, demo: Path) -> None:
        if not ModelVersion.objects.filter(project=project, name="demo-teacher").exists():
            model_version_register(project=project, name="demo-teacher", role="teacher", stage="sft", source=str(demo / "teacher"))
        if not ModelVersion.objects.filter(project=project, name="demo-student").exists():
            model_version_register(project=project, name="demo-student", role="student", source=str(demo / "student"))

    def _prompts(self, project, demo: Path) -> None:
        prompt_set, _ = PromptSet.objects.get_or_create(project=project, name="demo-tasks", defaults={"description": "Generated demo-world tasks"})
        rows = []
        for split in ("train", "eval"):
            for line in (demo / "prompts" / f"{split}.jsonl").read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    metadata = {k: v for k, v in record.items() if k not in ("prompt", "text", "split")}
                    rows.append({"text": record.get("prompt") or record["text"], "split": split, "tags": [record.get("family", "")],
                                 "metadata": metadata})
        created, _ = prompts_bulk_create(prompt_set=prompt_set, rows=rows)
        if created:
            self.stdout.write(f"Imported {created} demo prompts.")

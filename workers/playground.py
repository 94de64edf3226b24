"""The playground (`make playground`, i.e. `python -m workers.playground`): a Gradio app to put one
prompt to the teacher and any student version of a project side by side, both answers streaming
token by token, and to send the pair to the annotation queue. People log in with their Distillery
account; only researchers and admins of a project see its models (model names would unblind the
annotation queue). Each prompt is answered on its own, without earlier turns, so a pair sent to the
queue compares two answers to exactly the stored prompt.

Streaming uses transformers' TextIteratorStreamer around `model.generate` (ml.generation has no
streaming API); prompts are tokenized by ml.chat like everywhere else (template, BOS, end-of-turn stops)."""
import abc
import argparse
import os
import queue
import signal
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup()

# Django loads daphne, which imports twisted.internet.base, whose `@implementer(IConnector) class
# BaseConnector(ABC)` also leaves a class-only `__provides__` descriptor on abc.ABC itself (twisted
# issue, see scrapy/scrapy#6307); Gradio components look up every attribute of their ABC-derived
# class on the instance and crash on it. ABC itself provides no interface, so the stray entry goes.
if "__provides__" in vars(abc.ABC):
    del abc.ABC.__provides__

import gradio as gr  # noqa: E402  (after Django is set up: the handlers use the ORM)
import torch  # noqa: E402
from django.contrib.auth import authenticate, get_user_model  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.db import close_old_connections, connections  # noqa: E402
from transformers import TextIteratorStreamer  # noqa: E402

from ml.chat import prompt_ids, stop_token_ids  # noqa: E402
from ml.modeling import load_model  # noqa: E402
from webapp.catalog.models import ModelRole, ModelVersion  # noqa: E402
from webapp.evaluation.playground import playground_pair_submit  # noqa: E402
from webapp.projects.models import Project, Role  # noqa: E402
from webapp.projects.permissions import has_role  # noqa: E402
from webapp.projects.selectors import projects_for  # noqa: E402


class ModelCache:
    """Keeps the last few loaded models (teacher and a couple of students) so a new prompt starts at once."""

    def __init__(self, size: int = 3):
        self.size, self.models, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, model_version: ModelVersion):
        key = (model_version.source, model_version.revision)
        with self.lock:
            if key not in self.models:
                self.models[key] = load_model(model_version.source, revision=model_version.revision or None)
                while len(self.models) > self.size:
                    self.models.popitem(last=False)
            self.models.move_to_end(key)
            return self.models[key]


@contextmanager
def released_connection():
    """Gradio runs handlers on a thread pool; give the thread's database connection back when done."""
    try:
        yield
    finally:
        connections.close_all()


def _user(username: str):
    return get_user_model().objects.filter(username=username, is_active=True).first()


def _project_for(username: str, slug: str) -> Project:
    """The project, if this user is a researcher (or admin) there; else a ValidationError."""
    close_old_connections()
    user, project = _user(username), Project.objects.filter(slug=slug).first()
    if user is None or project is None or not has_role(user, project, Role.RESEARCHER):
        raise ValidationError("Pick a project where you are a researcher.")
    return project


def project_choices(username: str) -> list:
    user = _user(username)
    if user is None:
        return []
    return [(p.name, p.slug) for p in projects_for(user=user) if has_role(user, p, Role.RESEARCHER)]


def model_choices(username: str, slug: str) -> tuple[list, list]:
    project = _project_for(username, slug)
    versions = ModelVersion.objects.filter(project=project).order_by("-created_at")
    teachers = [(mv.name, mv.id) for mv in versions if mv.role == ModelRole.TEACHER]
    students = [(mv.name, mv.id) for mv in versions if mv.role != ModelRole.TEACHER]
    return teachers, students


def _start_stream(loaded, prompt: str, *, temperature: float, max_new_tokens: int, seed: int) -> TextIteratorStreamer:
    tokenizer = loaded.tokenizer
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], device=loaded.device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0 else {"do_sample": False}

    def run():
        torch.manual_seed(seed)
        with torch.inference_mode():
            loaded.model.generate(**inputs, **sampling, streamer=streamer, max_new_tokens=max_new_tokens,
                                  pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=stop_token_ids(tokenizer, loaded.model.generation_config.eos_token_id))

    threading.Thread(target=run, daemon=True).start()
    return streamer


def stream_pair(cache: ModelCache, teacher: ModelVersion, student: ModelVersion, prompt: str, *,
                temperature: float = 0.7, max_new_tokens: int = 64, seed: int = 0):
    """Yields (teacher_text, student_text) as either model produces tokens, until both are done."""
    pieces: queue.Queue = queue.Queue()
    streams = {side: _start_stream(cache.get(mv), prompt, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
               for side, mv in (("teacher", teacher), ("student", student))}

    def drain(side, streamer):
        for piece in streamer:
            pieces.put((side, piece))
        pieces.put((side, None))

    for side, streamer in streams.items():
        threading.Thread(target=drain, args=(side, streamer), daemon=True).start()
    texts, running = {"teacher": "", "student": ""}, 2
    while running:
        side, piece = pieces.get()
        if piece is None:
            running -= 1
            continue
        texts[side] += piece
        yield texts["teacher"], texts["student"]
    yield texts["teacher"], texts["student"]


def build_app(cache: ModelCache | None = None) -> gr.Blocks:
    cache = cache or ModelCache()

    def on_load(request: gr.Request):
        with released_connection():
            choices = project_choices(request.username)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    def on_project(slug, request: gr.Request):
        if not slug:
            return gr.update(choices=[], value=None), gr.update(choices=[], value=None)
        with released_connection():
            teachers, students = model_choices(request.username, slug)
        return (gr.update(choices=teachers, value=teachers[0][1] if teachers else None),
                gr.update(choices=students, value=students[0][1] if students else None))

    def answer(slug, teacher_id, student_id, prompt, temperature, max_new_tokens, request: gr.Request):
        with released_connection():
            project = _project_for(request.username, slug or "")
            teacher = ModelVersion.objects.filter(project=project, pk=teacher_id).first()
            student = ModelVersion.objects.filter(project=project, pk=student_id).first()
        if not prompt or not prompt.strip():
            raise gr.Error("Write a prompt first.")
        if teacher is None or student is None:
            raise gr.Error("Pick a teacher and a student of this project.")
        pair = {"slug": slug, "prompt": prompt.strip(), "teacher": teacher.id, "student": student.id,
                "temperature": float(temperature)}
        for teacher_text, student_text in stream_pair(cache, teacher, student, prompt.strip(), temperature=float(temperature),
                                                      max_new_tokens=int(max_new_tokens)):
            yield teacher_text, student_text, {**pair, "teacher_text": teacher_text, "student_text": student_text}, ""

    def send(pair, request: gr.Request):
        if not pair:
            return "Ask both models something first."
        try:
            with released_connection():
                project = _project_for(request.username, pair["slug"])
                teacher = ModelVersion.objects.get(project=project, pk=pair["teacher"])
                student = ModelVersion.objects.get(project=project, pk=pair["student"])
                counts = tuple(len(cache.get(mv).tokenizer(text, add_special_tokens=False)["input_ids"])
                               for mv, text in ((teacher, pair["teacher_text"]), (student, pair["student_text"])))
                comparison = playground_pair_submit(
                    project=project, prompt_text=pair["prompt"], teacher=teacher, student=student,
                    teacher_text=pair["teacher_text"], student_text=pair["student_text"], token_counts=counts,
                    temperature=pair["temperature"])
        except ValidationError as exc:
            return "Not sent: " + " ".join(exc.messages)
        return f"Sent: comparison #{comparison.id} is in the annotation queue of {project.name}."

    with gr.Blocks(title="Distillery playground") as app:
        gr.Markdown("## Distillery playground\nAsk the teacher and a student the same prompt; answers stream side by side.")
        pair = gr.State(None)
        # Choices are filled per user on load; the handlers check every value against the user's
        # projects again, so a value typed into the API is no way around the role check.
        with gr.Row():
            project = gr.Dropdown(label="Project", choices=[], allow_custom_value=True)
            teacher = gr.Dropdown(label="Teacher", choices=[], allow_custom_value=True)
            student = gr.Dropdown(label="Student", choices=[], allow_custom_value=True)
        with gr.Row():
            temperature = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature (0 = greedy)")
            max_new_tokens = gr.Slider(1, 512, value=64, step=1, label="Max new tokens")
        prompt = gr.Textbox(label="Prompt", placeholder="What is 3 plus 4?", lines=2)
        ask = gr.Button("Ask both (Enter)", variant="primary")
        with gr.Row():
            teacher_out = gr.Textbox(label="Teacher", lines=8, interactive=False)
            student_out = gr.Textbox(label="Student", lines=8, interactive=False)
        send_button = gr.Button("Send this pair to the annotation queue")
        status = gr.Markdown()
        app.load(on_load, outputs=project)
        project.change(on_project, inputs=project, outputs=[teacher, student])
        inputs = [project, teacher, student, prompt, temperature, max_new_tokens]
        outputs = [teacher_out, student_out, pair, status]
        ask.click(answer, inputs=inputs, outputs=outputs, api_name="answer")
        prompt.submit(answer, inputs=inputs, outputs=outputs, api_name=False)
        send_button.click(send, inputs=pair, outputs=status, api_name="send_pair")
    return app


def django_auth(username: str, password: str) -> bool:
    """Gradio calls this inside its event loop, where Django refuses ORM queries: check in a thread."""
    result = {"ok": False}

    def check():
        with released_connection():
            result["ok"] = authenticate(username=username, password=password) is not None

    thread = threading.Thread(target=check)
    thread.start()
    thread.join()
    return result["ok"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Chat with the teacher and a student side by side.")
    parser.add_argument("--host", default=os.environ.get("PLAYGROUND_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PLAYGROUND_PORT", "7860")))
    args = parser.parse_args(argv)
    app = build_app().queue()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # ours before launch: a Ctrl-C during start-up stops too
        signal.signal(sig, lambda *_: stop.set())
    app.launch(server_name=args.host, server_port=args.port, auth=django_auth, prevent_thread_lock=True,
               auth_message="Log in with your Distillery account.")
    serve_until_stopped(app, stop)


def serve_until_stopped(app, stop: threading.Event, *, grace: float = 1.5) -> None:
    """Waits for one Ctrl-C (or SIGTERM), then stops within `grace` seconds. Gradio's own handler
    waits for open browser streams and running generations (10 s and more), so people pressed
    Ctrl-C again; nothing is lost by not waiting: answers not yet sent to the queue were never stored."""
    while not stop.wait(0.5):
        pass
    print("Stopping the playground…", flush=True)
    closer = threading.Thread(target=app.close, daemon=True)
    closer.start()
    closer.join(grace)
    connections.close_all()
    sys.stdout.flush()
    os._exit(0)  # generation and stream threads would otherwise hold the interpreter open


if __name__ == "__main__":
    main()

"""Distillery's web side: Django apps (HTTP, ORM, templates, Channels consumers, services and
selectors). It never imports torch/transformers/trl/peft or workers/: it enqueues Celery tasks by
name after the transaction commits, so a web process starts fast and needs no GPU wheels."""

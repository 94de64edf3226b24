"""Celery task modules, imported here so a worker registers them all. Tasks for the `gpu` queue
live under workers.tasks.gpu (routed by name prefix); the rest run on the default queue."""
import importlib
import pkgutil

from workers import heartbeat  # noqa: F401  (connects the liveness signals)


def _import_all(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for module in pkgutil.iter_modules(package.__path__):
        full = f"{package_name}.{module.name}"
        importlib.import_module(full)
        if module.ispkg:
            _import_all(full)


_import_all(__name__)

"""Default-queue driver of "run the demo loop" (webapp/projects/demo_loop.py holds the steps): each
call looks at the current step once and, while the loop goes on, comes back two seconds later, so
it never holds the default worker while a gpu job runs."""
from celery import shared_task

from webapp.projects.demo_loop import demo_loop_advance


@shared_task(name="workers.tasks.demo_loop.advance")
def advance(project_id: int) -> str:
    if demo_loop_advance(project_id=project_id):
        advance.apply_async((project_id,), countdown=2)
        return "waiting"
    return "done"

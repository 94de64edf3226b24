"""The project home's "run the demo loop" button and the JSON its progress list polls."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from webapp.projects import demo_loop
from webapp.projects.models import Role
from webapp.projects.permissions import project_view


@require_POST
@project_view(Role.RESEARCHER)
def demo_loop_start(request, project):
    try:
        demo_loop.demo_loop_start(project=project, created_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "The demo loop started: each step below starts when the one before it finished.")
    return redirect("project_home", slug=project.slug)


@project_view(Role.RESEARCHER)
def demo_loop_status(request, project):
    state = demo_loop.demo_loop_state(project_id=project.pk) or {}
    return JsonResponse({"status": state.get("status"), "error": state.get("error", ""), "notes": state.get("notes", []),
                         "evaluation": state.get("ids", {}).get("evaluation"), "steps": demo_loop.demo_loop_view(state)})

"""The one shape of a job's lifecycle button (Rerun, Cancel) for every job kind: a POST-only,
researcher-only view that finds the job in the project, calls the kind's service, says what happened
and goes back to the job's page. Each app's urls.py builds its views with `job_action_view`."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from webapp.projects.models import Role
from webapp.projects.permissions import project_view


def job_action_view(model, action, *, done: str, back: str, url_kwarg: str = "job_id", back_kwarg: str | None = None):
    """`action(job)` is the service (it raises ValidationError when the job is in the wrong state);
    `done` the message on success ("{job}" is the job's str); `back` the URL name to return to, with
    the job id as `back_kwarg` (default: the same name as in the route; "" for a page without one)."""
    back_kwarg = url_kwarg if back_kwarg is None else back_kwarg

    @require_POST
    @project_view(Role.RESEARCHER)
    def view(request, project, **kwargs):
        job = get_object_or_404(model, project=project, pk=kwargs[url_kwarg])
        try:
            action(job)
            messages.success(request, done.format(job=job))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect(back, slug=project.slug, **({back_kwarg: job.pk} if back_kwarg else {}))

    return view


def form_create(request, form, create, *, done, then):
    """The create half of a list-and-create page: on a valid POST, `create(cleaned_data)` makes the
    job (a ValidationError it raises lands on the form), `done(job)` is the success message and
    `then(job)` the response. Returns that response, or None: render the page (with the form's errors)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        job = create(form.cleaned_data)
    except ValidationError as exc:
        form.add_error(None, exc)
        return None
    messages.success(request, done(job))
    return then(job)

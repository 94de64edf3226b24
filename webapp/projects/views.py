"""Project list, project home (the loop's state), members and invites."""
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.projects import demo_loop, loop_guide, selectors, services
from webapp.projects.forms import AddMemberForm, InviteForm, ProjectForm, SignUpForm
from webapp.projects.models import Invite, Role
from webapp.projects.permissions import project_view


@login_required
def project_list(request):
    form = ProjectForm(request.POST or None) if request.user.is_superuser else None
    if form is not None and request.method == "POST" and form.is_valid():
        project = services.project_create(created_by=request.user, **form.cleaned_data)
        return redirect("project_home", slug=project.slug)
    return render(request, "projects/list.html", {"projects": selectors.projects_for(user=request.user), "form": form})


@project_view(Role.ANNOTATOR)
def project_home(request, project):
    state = selectors.project_loop_state(project=project)
    demo = demo_loop.demo_loop_state(project_id=project.pk)
    return render(request, "projects/home.html", {"project": project, "state": state, "role": request.role,
                                                  "steps": loop_guide.loop_steps(state), "demo_loop": demo,
                                                  "demo_steps": demo_loop.demo_loop_view(demo),
                                                  "demo_ready": demo_loop.demo_loop_inputs(project=project) is not None})


@project_view(Role.ADMIN)
def project_members(request, project):
    form, invite_form = AddMemberForm(), InviteForm()
    if request.method == "POST":
        form = AddMemberForm(request.POST)
        if form.is_valid():
            try:
                _add_member(project, form.cleaned_data)
                messages.success(request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}.")
                return redirect("project_members", slug=project.slug)
            except ValidationError as exc:
                form.add_error(None, exc)
    context = {"project": project, "role": request.role, "members": selectors.project_members(project=project), "form": form,
               "invite_form": invite_form, "invites": Invite.objects.filter(project=project, used_at__isnull=True)}
    return render(request, "projects/members.html", context)


def _add_member(project, data):
    services.member_add(project=project, username=data["username"], password=data["password"], role=data["role"])


@require_POST
@project_view(Role.ADMIN)
def project_member_remove(request, project, user_id):
    try:
        services.member_remove(project=project, user=get_user_model().objects.get(pk=user_id))
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    return redirect("project_members", slug=project.slug)


@require_POST
@project_view(Role.ADMIN)
def project_invite_create(request, project):
    form = InviteForm(request.POST)
    if form.is_valid():
        invite = services.invite_create(project=project, created_by=request.user, **form.cleaned_data)
        url = request.build_absolute_uri(f"/invite/{invite.token}")
        messages.success(request, f"Invite link ({invite.role}): {url}")
    return redirect("project_members", slug=project.slug)


def invite_accept(request, token):
    invite = Invite.objects.select_related("project").filter(token=token).first()
    form = SignUpForm(request.POST or None) if not request.user.is_authenticated else None
    if request.method == "POST" and invite is not None:
        try:
            # The sign-up and the acceptance commit together: a used or expired link creates no account.
            with transaction.atomic():
                user = form.save() if form is not None and form.is_valid() else request.user
                if user.is_authenticated:
                    services.invite_accept(token=token, user=user)
            if user.is_authenticated:
                if form is not None:
                    login(request, user)
                return redirect("project_home", slug=invite.project.slug)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
    return render(request, "projects/invite.html", {"invite": invite, "form": form}, status=200 if invite else 404)

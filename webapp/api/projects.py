"""API: who am I, projects (list, create as on the project list page: superusers), one project's
loop state, members (admins, as on the members page), and the annotation queue (annotators, the
annotation page's own next/submit)."""
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from webapp.annotation import services as annotation_services
from webapp.annotation.api import NOT_OFFERED, _state
from webapp.api.access import Page, bound, error, page_of, project_for
from webapp.projects import selectors, services
from webapp.projects.forms import AddMemberForm, ProjectForm
from webapp.projects.models import Role

router = Router(tags=["projects"])


def project_out(project) -> dict:
    return {"id": project.pk, "slug": project.slug, "name": project.name, "description": project.description,
            "created_at": project.created_at, "url": f"/api/v1/projects/{project.slug}"}


@router.get("/me")
def me(request):
    token = request.api_token
    return {"username": request.user.username, "is_superuser": request.user.is_superuser,
            "token": None if token is None else {"name": token.name, "prefix": token.prefix, "can_write": token.can_write,
                                                 "all_projects": token.all_projects, "expires_at": token.expires_at,
                                                 "projects": list(token.projects.values_list("slug", flat=True))}}


@router.get("/projects", response=Page)
def project_list(request):
    projects = selectors.projects_for(user=request.user).order_by("name", "id")
    token = request.api_token
    if token is not None and not token.all_projects:
        projects = projects.filter(pk__in=token.projects.values("pk"))
    return page_of(request, projects, project_out)


class ProjectIn(Schema):
    name: str
    description: str = ""
    guidelines: str = ""


@router.post("/projects", response={201: dict})
def project_create(request, body: ProjectIn):
    if not request.user.is_superuser:
        raise error(403, "Only an administrator of the server creates projects.", kind="forbidden")
    form = bound(ProjectForm, body.dict())
    return 201, project_out(services.project_create(created_by=request.user, **form.cleaned_data))


@router.get("/projects/{slug}")
def project_detail(request, slug: str):
    project = project_for(request, slug, Role.ANNOTATOR)
    return {**project_out(project), "role": request.role, "guidelines": project.guidelines,
            "loop": selectors.project_loop_state(project=project) if request.role != Role.ANNOTATOR else None}


def member_out(membership) -> dict:
    return {"user_id": membership.user_id, "username": membership.user.username, "role": membership.role}


@router.get("/projects/{slug}/members", response=Page)
def member_list(request, slug: str):
    project = project_for(request, slug, Role.ADMIN)
    return page_of(request, selectors.project_members(project=project), member_out)


class MemberIn(Schema):
    username: str
    role: str
    password: str = ""


@router.post("/projects/{slug}/members", response={201: dict})
def member_add(request, slug: str, body: MemberIn):
    project = project_for(request, slug, Role.ADMIN)
    form = bound(AddMemberForm, body.dict())
    data = form.cleaned_data
    membership = services.member_add(project=project, username=data["username"], password=data["password"], role=data["role"])
    return 201, member_out(membership)


@router.delete("/projects/{slug}/members/{user_id}", response={204: None})
def member_remove(request, slug: str, user_id: int):
    project = project_for(request, slug, Role.ADMIN)
    services.member_remove(project=project, user=get_object_or_404(get_user_model(), pk=user_id))
    return 204, None


@router.get("/projects/{slug}/annotation/next", tags=["annotation"])
def annotation_next(request, slug: str):
    """The next comparison on offer to you (leased for a while), as the annotation page gets it."""
    project = project_for(request, slug, Role.ANNOTATOR)
    return _state(project, request.user, lease_next=True)


class SubmitIn(Schema):
    comparison: int
    ranking: list | None = None
    both_bad: bool = False
    rationale: str = ""
    flags: list[str] = []
    time_spent_ms: int | None = None


@router.post("/projects/{slug}/annotation/submit", tags=["annotation"], response={200: dict, 201: dict})
def annotation_submit(request, slug: str, body: SubmitIn):
    project = project_for(request, slug, Role.ANNOTATOR)
    written = annotation_services.judgement_submit(
        project=project, comparison_id=body.comparison, annotator=request.user, ranking=body.ranking,
        both_bad=body.both_bad, rationale=body.rationale, flags=body.flags,
        time_spent_ms=None if body.time_spent_ms is None else max(0, min(body.time_spent_ms, 86_400_000)))
    if written is None:
        raise error(404, NOT_OFFERED, loc=("body", "comparison"), kind="not_found")
    judgement, created = written
    return (201 if created else 200), {"judgement": judgement.pk, "created": created, "verdict": judgement.verdict}

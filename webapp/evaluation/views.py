"""Evaluation pages (researchers and admins only: annotators judge evaluation comparisons blind, so
they must not see which model wrote what): the list with the new-evaluation form, an evaluation's
results, its side-by-side view, the project leaderboard and the closed loop's rounds."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp.evaluation import integrity, loop_services, selectors, services
from webapp.evaluation.forms import EvaluationForm, NextRoundForm, SendToHumansForm
from webapp.evaluation.models import Evaluation, LoopRound
from webapp.job_views import form_create
from webapp.projects.models import Role
from webapp.projects.permissions import project_view

SIGNALS = [("teacher_logp", "Teacher log-prob"), ("kl", "Per-token KL(teacher‖student)"), ("advantage", "ADPA advantage")]


def _source(request) -> str:
    source = request.GET.get("source", "all")
    return source if source in selectors.SOURCES else "all"


@project_view(Role.RESEARCHER)
def evaluation_list(request, project):
    form = EvaluationForm(request.POST or None, project=project)
    if created := form_create(
        request, form, lambda data: services.evaluation_create(project=project, created_by=request.user,
                                                               **form.service_kwargs()),
        done=lambda evaluation: f"Evaluation “{evaluation.name}” queued.",
        then=lambda evaluation: redirect("evaluation_detail", slug=project.slug, evaluation_id=evaluation.id)):
        return created
    return render(request, "evaluation/list.html", {
        "project": project, "role": request.role, "form": form,
        "evaluations": selectors.evaluations_for(project=project)})


@project_view(Role.RESEARCHER)
def evaluation_detail(request, project, evaluation_id):
    evaluation = get_object_or_404(Evaluation.objects.select_related("teacher", "prompt_set"), project=project,
                                   pk=evaluation_id)
    source = _source(request)
    summary = selectors.evaluation_summary(evaluation=evaluation)
    benchmarks = selectors.evaluation_benchmarks(evaluation=evaluation)
    for row in summary:  # lm-eval scores beside the win rates
        row["benchmarks"] = benchmarks.get("by_model", {}).get(row["model_version"].id) if benchmarks else None
    return render(request, "evaluation/detail.html", {
        "benchmarks": benchmarks,
        "project": project, "role": request.role, "evaluation": evaluation, "source": source, "summary": summary,
        "contaminated": [row for row in summary if row["contamination"]["contaminated"]],
        "regressions": integrity.evaluation_regressions(evaluation=evaluation),
        "unscored_parents": integrity.unscored_parents(evaluation=evaluation),
        "humans": selectors.evaluation_human_progress(evaluation=evaluation),
        "leaderboard": selectors.leaderboard_for(project=project, source=source), "send_form": SendToHumansForm()})


@project_view(Role.RESEARCHER)
def evaluation_side_by_side(request, project, evaluation_id):
    evaluation = get_object_or_404(Evaluation, project=project, pk=evaluation_id)
    filters = {"disagreements": request.GET.get("disagreements") == "1", "losses": request.GET.get("losses") == "1",
               "family": request.GET.get("family", ""), "search": request.GET.get("q", "")}
    if filters["disagreements"] or filters["losses"]:  # these need every row's verdicts
        page = Paginator(selectors.side_by_side_rows(evaluation=evaluation, **filters), 20).get_page(request.GET.get("page"))
    else:  # the common view: page the prompt ids in SQL, then build only the shown rows
        page = Paginator(selectors.side_by_side_prompt_ids(evaluation=evaluation, family=filters["family"], search=filters["search"]),
                         20).get_page(request.GET.get("page"))
        page.object_list = selectors.side_by_side_rows(evaluation=evaluation, prompt_ids=list(page.object_list))
    selectors.side_by_side_diffs(page)  # B25: diff the shown page only
    signals = {str(c["output"].id): c["output"].signals for row in page for c in row["candidates"]}
    signal = request.GET.get("signal", "teacher_logp")
    return render(request, "evaluation/side_by_side.html", {
        "project": project, "role": request.role, "evaluation": evaluation, "page": page, "filters": filters,
        "families": selectors.evaluation_families(evaluation=evaluation), "signals": signals, "signal_choices": SIGNALS,
        "signal": signal if signal in dict(SIGNALS) else "teacher_logp", "query": request.GET.copy()})


@require_POST
@project_view(Role.RESEARCHER)
def evaluation_send_to_humans(request, project, evaluation_id):
    evaluation = get_object_or_404(Evaluation, project=project, pk=evaluation_id)
    form = SendToHumansForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Between 1 and 10 annotations per comparison.")
        opened = services.evaluation_send_to_humans(evaluation=evaluation, **form.cleaned_data)
        messages.success(request, f"{opened} comparisons sent to the annotation queue.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("evaluation_detail", slug=project.slug, evaluation_id=evaluation.id)


@require_POST
@project_view(Role.RESEARCHER)
def evaluation_cancel(request, project, evaluation_id):
    evaluation = get_object_or_404(Evaluation, project=project, pk=evaluation_id)
    if services.evaluation_cancel(evaluation=evaluation):
        messages.success(request, "Evaluation cancelled.")
    else:
        messages.error(request, f"The evaluation is already {evaluation.status}.")
    return redirect("evaluation_detail", slug=project.slug, evaluation_id=evaluation.id)


@project_view(Role.RESEARCHER)
def leaderboard(request, project):
    if request.method == "POST":
        services.leaderboard_refresh_later(project=project)
        messages.success(request, "Recomputing the leaderboard; this page updates when it is ready.")
        return redirect("evaluation_leaderboard", slug=project.slug)
    source = _source(request)
    return render(request, "evaluation/leaderboard.html", {
        "project": project, "role": request.role, "source": source,
        "leaderboard": selectors.leaderboard_for(project=project, source=source)})


@require_POST
@project_view(Role.RESEARCHER)
def loop_round_cancel(request, project, round_id):
    loop_round = get_object_or_404(LoopRound, project=project, pk=round_id)
    outcome = loop_services.loop_round_cancel(loop_round=loop_round)
    notes = {"cancelled": "cancelled", "requested": "stops after the current batch"}
    if outcome:
        messages.success(request, f"Round {loop_round.number} {notes[outcome]}.")
    else:
        messages.error(request, f"Round {loop_round.number} is already {loop_round.status}.")
    return redirect("evaluation_loop", slug=project.slug)


@require_POST
@project_view(Role.RESEARCHER)
def loop_round_rerun(request, project, round_id):
    loop_round = get_object_or_404(LoopRound, project=project, pk=round_id)
    try:
        loop_services.loop_round_rerun(loop_round=loop_round)
        messages.success(request, f"Round {loop_round.number} queued again.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("evaluation_loop", slug=project.slug)


@project_view(Role.RESEARCHER)
def loop_rounds(request, project):
    form = NextRoundForm(request.POST or None, project=project, latest_student=selectors.latest_student(project=project))
    if created := form_create(
        request, form, lambda data: loop_services.loop_round_start(project=project, created_by=request.user, **data),
        done=lambda loop_round: f"Round {loop_round.number} started.",
        then=lambda loop_round: redirect("evaluation_loop", slug=project.slug)):
        return created
    rounds = selectors.loop_rounds(project=project)
    chart = {"labels": [f"round {r.number}" for r in rounds], "judgements": [r.judgements_in for r in rounds],
             "student": [r.stats.get("student_oracle_accuracy") for r in rounds],
             "teacher": [r.stats.get("teacher_oracle_accuracy") for r in rounds]}
    return render(request, "evaluation/loop.html", {
        "project": project, "role": request.role, "form": form, "rounds": rounds, "chart": chart})

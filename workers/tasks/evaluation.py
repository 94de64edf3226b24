"""Evaluation bookkeeping on the default queue (never behind a training run on the gpu queue): the
win-rate refresh that human verdicts trigger, and the project's Bradley-Terry leaderboard."""
from dataclasses import asdict

from celery import shared_task

from ml.metrics import bradley_terry, win_rate
from webapp.catalog.models import ModelVersion
from webapp.evaluation import selectors, services
from webapp.evaluation.models import Evaluation
from webapp.lifecycle import JobStatus
from webapp.projects.models import Project


@shared_task(name="workers.tasks.evaluation.refresh_results")
def refresh_results(evaluation_id: int) -> dict:
    """Win rate of each candidate against the teacher, per judge source, with its Wilson interval; for a
    finished evaluation (human verdicts arriving) the leaderboard is refitted too."""
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    versus = {str(mv): {source: asdict(win_rate(outcomes))
                        for source, outcomes in sources.items() if outcomes}
              for mv, sources in selectors.evaluation_outcomes(evaluation=evaluation).items()}
    services.evaluation_results_store(evaluation=evaluation, results={"versus_teacher": versus})
    if evaluation.status == JobStatus.SUCCEEDED:  # a late (human) verdict also moves the leaderboard
        refresh_leaderboard(evaluation.project_id)
    return versus


@shared_task(name="workers.tasks.evaluation.refresh_leaderboard")
def refresh_leaderboard(project_id: int) -> dict:
    """Bradley-Terry scores (95% bootstrap CI) over every pairwise outcome, per outcome source."""
    project = Project.objects.get(pk=project_id)
    names = dict(ModelVersion.objects.filter(project=project).values_list("id", "name"))
    scores = {}
    for source in selectors.SOURCES:
        pairs = selectors.leaderboard_pairs(project=project, source=source)
        scores[source] = {"rows": [], "pairs": len(pairs), "error": ""}
        if not pairs:
            continue
        games = {}
        for a, b, _ in pairs:
            games[a], games[b] = games.get(a, 0) + 1, games.get(b, 0) + 1
        try:
            fit = bradley_terry(pairs, n_boot=200, seed=0)
        except ValueError as error:
            scores[source]["error"] = str(error)
            continue
        scores[source]["rows"] = sorted(
            ({"model_version": mv, "name": names.get(mv, str(mv)), "score": s.score, "low": s.low, "high": s.high,
              "games": games[mv]} for mv, s in fit.items()), key=lambda row: -row["score"])
    services.leaderboard_store(project=project, scores=scores)
    return scores

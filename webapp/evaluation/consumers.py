"""The evaluation socket: researchers on any evaluation, leaderboard or loop page hear the project's
evaluation events (events.py); on connect they get the state of every unfinished evaluation and
round, so a page opened late, or a browser that reconnects, catches up."""
from webapp.evaluation import events
from webapp.evaluation.models import Evaluation, LoopRound
from webapp.lifecycle import JobStatus
from webapp.projects.live import ProjectSocket
from webapp.projects.models import Role

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class EvaluationSocket(ProjectSocket):
    needed_role = Role.RESEARCHER

    def groups_for(self, project, **kwargs) -> list[str]:
        return [events.project_group(project.id)]

    def snapshot(self, project, **kwargs):
        evaluations = Evaluation.objects.filter(project=project, status__in=ACTIVE)
        rounds = LoopRound.objects.filter(project=project, status__in=ACTIVE)
        return {"event": "snapshot", "evaluations": [events.evaluation_state(e) for e in evaluations],
                "rounds": [events.round_state(r) for r in rounds]}

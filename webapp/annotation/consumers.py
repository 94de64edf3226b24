"""The annotation sockets: live counters (pending, done, disputed) for every member, and judge-job
progress for researchers only; each sends its current state on connect so a reconnecting page
catches up."""
from webapp.annotation import events, judging
from webapp.projects.live import ProjectSocket
from webapp.projects.models import Role


class AnnotationSocket(ProjectSocket):
    needed_role = Role.ANNOTATOR

    def groups_for(self, project, **kwargs):
        return [events.group(project.pk)]

    def snapshot(self, project, **kwargs):
        return events.counters(project.pk)


class JudgingSocket(ProjectSocket):
    needed_role = Role.RESEARCHER

    def groups_for(self, project, **kwargs):
        return [events.judging_group(project.pk)]

    def snapshot(self, project, **kwargs):
        return judging.judge_jobs_snapshot(project=project)

"""The annotation socket: live counters (pending, done, disputed) and judge-job progress for every
member; the current counters are sent on connect so a reconnecting page catches up."""
from webapp.annotation import events
from webapp.projects.live import ProjectSocket
from webapp.projects.models import Role


class AnnotationSocket(ProjectSocket):
    needed_role = Role.ANNOTATOR

    def groups_for(self, project, **kwargs):
        return [events.group(project.pk)]

    def snapshot(self, project, **kwargs):
        return events.counters(project.pk)

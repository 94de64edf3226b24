"""WebSockets of training: one run's live page, and the project's run list. Both only relay what the
worker publishes (webapp/training/events.py owns the schema) and send a snapshot on connect; the
run socket takes the client's last seen step (`?after=N`) so a reconnecting browser receives exactly
the metric points it missed, from the database, while new ones already arrive from the group."""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from webapp.projects.live import ProjectSocket
from webapp.projects.models import Role
from webapp.training import events
from webapp.training.models import TrainingRun


class RunSocket(ProjectSocket):
    needed_role = Role.RESEARCHER

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        # A run id from another project must not open that run's group (same close as a role refusal).
        if not await self._run_in_project(kwargs["slug"], int(kwargs["run_id"])):
            await self.close(code=4403)
            return
        await super().connect()

    @database_sync_to_async
    def _run_in_project(self, slug, run_id) -> bool:
        return TrainingRun.objects.filter(id=run_id, project__slug=slug).exists()

    def groups_for(self, project, **kwargs):
        return [events.run_group(int(kwargs["run_id"]))]

    def snapshot(self, project, **kwargs):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = query.get("after", ["-1"])[0]
        after = int(after) if after.lstrip("-").isdigit() else -1
        run = TrainingRun.objects.get(id=int(kwargs["run_id"]), project=project)
        return events.run_snapshot(run, after_step=after)


class ProjectRunsSocket(ProjectSocket):
    needed_role = Role.RESEARCHER

    def groups_for(self, project, **kwargs):
        return [events.project_group(project.id)]

    def snapshot(self, project, **kwargs):
        return events.runs_snapshot(project)
